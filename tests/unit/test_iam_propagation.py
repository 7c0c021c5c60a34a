"""A 403 while IAM grants propagate is retried; a 403 that outlasts the window is a refusal."""

import base64
import datetime as dt

import pytest
from google.api_core import exceptions as gexc

from shared.messages import FetchRequest, dump
from shared.pubsub import delivery_from_event, handle

WINDOW_S = 420


def push(age_s: float) -> dict:
    published = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_s)
    request = FetchRequest(table="p-1234.d.t", destination="gs://bucket/fetch/r1", run_id="r1")
    return {
        "message": {
            "data": base64.b64encode(dump(request)).decode(),
            "messageId": "7",
            "publishTime": published.isoformat().replace("+00:00", "Z"),
        },
        "subscription": "projects/p/subscriptions/plan-fetch",
    }


def denied(message, delivery):
    raise gexc.Forbidden("storage.objects.create denied for fn-plan@p.iam")


def test_the_publish_time_of_a_push_is_read():
    delivery = delivery_from_event(push(30), "fetch-requests")
    assert 29 <= delivery.age_s() < 60


def test_a_403_on_a_young_message_is_redelivered_and_no_run_fails():
    failures = []
    with pytest.raises(gexc.Forbidden):
        handle(push(30), "fetch-requests", FetchRequest, denied, "plan_fetch",
               on_permanent=lambda *a: failures.append(a), iam_propagation_s=WINDOW_S)  # fmt: skip
    assert failures == []


def test_a_403_that_outlasts_the_window_fails_the_run_with_the_reason():
    failures = []
    answer = handle(push(WINDOW_S + 5), "fetch-requests", FetchRequest, denied, "plan_fetch",
                    on_permanent=lambda m, d, exc: failures.append(str(exc)),
                    iam_propagation_s=WINDOW_S)  # fmt: skip
    assert answer is None  # acknowledged
    assert len(failures) == 1 and "403 Forbidden" in failures[0]
    assert "storage.objects.create denied" in failures[0]


def test_other_refusals_do_not_wait_for_the_window():
    def missing(message, delivery):
        raise gexc.NotFound("no such table p-1234.d.t")

    failures = []
    handle(push(1), "fetch-requests", FetchRequest, missing, "plan_fetch",
           on_permanent=lambda m, d, exc: failures.append(str(exc)),
           iam_propagation_s=WINDOW_S)  # fmt: skip
    assert len(failures) == 1 and "404" in failures[0]
