"""Generated workflow documents, valid and broken: refused with a path, or accepted and round-tripped."""

from collections import Counter

from hypothesis import HealthCheck, given, settings

from . import documents
from .conftest import report

EXAMPLES = 1500  # `sagachaos --large` runs 10,000


def test_generated_documents_are_refused_by_path_or_round_trip():
    outcome = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(documents.documents)
    def run(document):
        documents.check(document, outcome)

    run()
    report("workflow documents", dict(outcome))
    assert outcome["accepted"] + outcome["refused"] >= EXAMPLES * 0.9
    # both halves were exercised
    assert outcome["accepted"] >= EXAMPLES // 10 and outcome["refused"] >= EXAMPLES // 10
