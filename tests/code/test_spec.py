"""The feature spec is the one definition: names, columns, widths, aliases and docs agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from features import spec
from features.engine import FeatureEngine, assemble, stateless_features
from policy.expressions import parse

DOCS = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_every_column_is_owned_by_exactly_one_entity() -> None:
    owned = spec.TRANSACTION_COLUMNS + spec.CARD_COLUMNS + spec.TERMINAL_COLUMNS
    owned += [c for e in spec.LINKS for c in spec.link_columns(e)[0]]
    assert sorted(owned) == list(range(spec.N_FEATURES))
    assert len(set(spec.FEATURE_NAMES)) == spec.N_FEATURES
    assert len(spec.ALIASES) == spec.N_FEATURES  # one short name per feature
    assert (spec.CARD_WIDTH, spec.TERMINAL_WIDTH) == (13, 7)


def test_engine_output_lands_in_the_spec_columns() -> None:
    """A card feature the kernel writes in its slot must arrive under its spec name."""
    engine = FeatureEngine()
    t0 = 1_527_811_200_000
    times = np.array([t0, t0 + 60_000, t0 + 120_000], np.int64)
    x = engine.transact(["c", "c", "c"], ["T", "T", "T"], times, np.array([5.0, 7.0, 9.0]),
                        np.arange(3))  # fmt: skip
    col = {n: i for i, n in enumerate(spec.FEATURE_NAMES)}
    assert x[2, col["USER_NB_TX_1HOUR_WINDOW"]] == 3
    assert x[2, col["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"]] == 7.0
    assert x[2, col["SECONDS_SINCE_LAST_TX"]] == 60.0
    assert x[2, col["TX_AMOUNT"]] == 9.0
    user = np.arange(spec.CARD_WIDTH, dtype=np.float64)[None, :]
    term = 100 + np.arange(spec.TERMINAL_WIDTH, dtype=np.float64)[None, :]
    y = assemble(stateless_features(times[:1], np.array([1.0])), user, term)
    for s, i in zip(spec.FEATURES, range(spec.N_FEATURES), strict=True):
        if s.entity == "card":
            assert y[0, i] == s.slot
        elif s.entity == "terminal":
            assert y[0, i] == 100 + s.slot
        elif s.entity in spec.LINKS:  # no link events given: missing, never zero
            assert np.isnan(y[0, i])
    links = 1000 + np.arange(spec.LINK_WIDTH, dtype=np.float64)[None, :]
    for e, entity in enumerate(spec.LINKS):
        z = assemble(
            stateless_features(times[:1], np.array([1.0])), user, term,
            (np.zeros(1, np.int64), np.array([e], np.int8), links),
        )  # fmt: skip
        for i, s in enumerate(spec.FEATURES):
            if s.entity == entity:
                assert z[0, i] == 1000 + s.slot
            elif s.entity in spec.LINKS:
                assert np.isnan(z[0, i])


def test_rule_language_knows_every_alias_and_name() -> None:
    x = np.arange(spec.N_FEATURES, dtype=np.float64)[None, :]
    for i, s in enumerate(spec.FEATURES):
        assert parse(f"{s.alias} == {i}").evaluate(x, np.zeros(1)).all()
        assert parse(f"{s.name.lower()} == {i}").evaluate(x, np.zeros(1)).all()


def test_docs_feature_table_is_the_generated_one() -> None:
    text = DOCS.read_text()
    table = text.split("<!-- feature-table:start -->\n")[1].split("\n<!-- feature-table:end -->")[0]
    assert table == spec.markdown_table(), "run `python -m features.spec` into docs/architecture.md"
