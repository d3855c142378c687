"""Generated workflow documents, valid and broken: refused with a path, or accepted and round-tripped."""

from dashboard.chaos import fuzz

from .conftest import report

EXAMPLES = 1500  # `sagachaos --large` runs 10,000


def test_generated_documents_are_refused_by_path_or_round_trip():
    figures = fuzz.documents(examples=EXAMPLES)
    report("workflow documents", figures)
    assert figures["documents"] >= EXAMPLES * 0.9
    # both halves were exercised
    assert figures["accepted_and_round_tripped"] >= EXAMPLES // 10
    assert figures["refused_with_paths"] >= EXAMPLES // 10
