"""A synthetic retailer with known ground truth: stores, products, promotions, daily sales."""
