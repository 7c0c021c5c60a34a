"""Training jobs: pricing (elasticity, revenue-maximising price) and promotion revenue."""
