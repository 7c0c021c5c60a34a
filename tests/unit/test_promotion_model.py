"""The promotion model beats the planner's naive forecast on a time-based holdout."""

import numpy as np
import pyarrow as pa

from shared.synthetic.generate import Shape, build_world, transactions
from shared.training.promotions import evaluate, promotion_rows, split_by_time


def test_model_beats_the_naive_uplift_on_later_promotions():
    world = build_world(Shape.for_rows(400_000), 11)
    rows = promotion_rows(pa.Table.from_batches(list(transactions(world))), world.promotions)
    train, test = split_by_time(rows)
    assert train["start"].max() < test["start"].min()  # never shuffled across time
    assert np.all(rows["baseline"] > 0) and len(rows["revenue"]) > 300
    scores = evaluate(rows)
    assert scores["model_wape"] < 0.8 * scores["naive_wape"], scores


def test_compiled_trees_predict_what_sklearn_predicts_on_unseen_rows():
    from shared.training.promotions import CompiledTrees, train

    world = build_world(Shape(n_stores=10, n_products=60, n_days=364), 11)
    rows = promotion_rows(pa.Table.from_batches(list(transactions(world))), world.promotions)
    fitted, unseen = split_by_time(rows)
    model = train(fitted)
    assert isinstance(model.fast, CompiledTrees)
    x = model.features(unseen)
    x[::7, 0] = np.nan  # a missing value takes the side sklearn learned for it
    np.testing.assert_allclose(model.fast.predict(x), model.model.predict(x), atol=1e-9)


def test_a_model_pickled_before_the_product_rate_still_predicts():
    """Models published before the product's promoted level was a feature lack its
    attributes; the API keeps serving them until the next training run."""
    import pickle

    from shared.training.promotions import train

    world = build_world(Shape(n_stores=10, n_products=60, n_days=364), 11)
    rows = promotion_rows(pa.Table.from_batches(list(transactions(world))), world.promotions)
    from sklearn.ensemble import HistGradientBoostingRegressor

    old = pickle.loads(pickle.dumps(train(rows)))
    del old.__dict__["product_rate"], old.__dict__["global_rate"]
    # as it was trained then: on the features without the product's promoted level
    old.model = HistGradientBoostingRegressor(max_iter=20).fit(
        old.features(rows), rows["log_uplift"]
    )
    old.fast = None
    predicted = old.predict_revenue(rows)
    assert predicted.shape == rows["revenue"].shape and np.all(predicted > 0)


def test_each_promotion_is_predicted_by_a_model_of_the_promotions_before_it():
    from shared.training.promotions import BACKTEST_CUTS, backtest

    world = build_world(Shape(n_stores=10, n_products=60, n_days=364), 11)
    rows = promotion_rows(pa.Table.from_batches(list(transactions(world))), world.promotions)
    predicted = backtest(rows)
    first = rows["start"] < np.quantile(rows["start"], BACKTEST_CUTS[0])
    assert np.isnan(predicted[first]).all() and np.isfinite(predicted[~first]).all()
    assert (predicted[~first] > 0).all()
    # No look-ahead: the newest promotions' outcomes change nothing predicted before them.
    last = rows["start"] >= np.quantile(rows["start"], BACKTEST_CUTS[-1])
    changed = {k: v.copy() for k, v in rows.items()}
    changed["revenue"][last] *= 10
    changed["log_uplift"][last] += np.log(10)
    np.testing.assert_array_equal(backtest(changed), predicted)
    # The last window is the holdout evaluate scores: the same model, fitted once.
    assert evaluate(rows, predicted) == evaluate(rows)
