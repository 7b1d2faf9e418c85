"""The reconciliation tests that replaced whole-table re-reads still catch what those caught.

``assert_customer_revenue_matches_valid_purchases`` compares every customer's gross revenue in
``customer_features`` with their valid purchase lines, so one wrong or missing customer fails it (it replaced a
grand total and a separate "every purchasing customer has features" test). ``quality_loads`` sums the stored
lines of ``quality_lines_by_load_class`` instead of counting them again, so lines lost from the class counts
(a reason missing from that model's list of classes) show as a load whose stored lines disagree with the load
log, and ``assert_load_log_matches_stored_lines`` fails.
"""

from __future__ import annotations

from conftest import connect, dbt_test, execute, run_dbt

from insiders.warehouse import Target

REVENUE_TEST = "assert_customer_revenue_matches_valid_purchases"
LOAD_LOG_TEST = "assert_load_log_matches_stored_lines"


def test_revenue_reconciliation_reports_each_wrong_or_missing_customer(features_built: Target) -> None:
    target, schema = features_built, features_built.schema
    assert dbt_test(target, REVENUE_TEST)[0] == 0
    with connect(target) as wh:
        first, second = (
            row[0] for row in wh.query(f"select customer_id from {schema}.customer_features order by 1")[:2]
        )
    # One customer's revenue off by a penny, another customer's row gone: two customers reported.
    execute(
        target,
        f"update {schema}.customer_features set gross_revenue = gross_revenue + 0.01 where customer_id = {first}",
    )
    execute(target, f"delete from {schema}.customer_features where customer_id = {second}")
    status, output = dbt_test(target, REVENUE_TEST)
    assert status != 0 and "FAIL 2" in output, output


def test_lines_lost_from_the_class_counts_fail_the_load_log_check(features_built: Target) -> None:
    target, schema = features_built, features_built.schema
    assert dbt_test(target, LOAD_LOG_TEST)[0] == 0
    # As if a new exclusion reason were missing from quality_lines_by_load_class's list: its lines vanish from
    # the class counts, and quality_loads, summed from them, no longer holds every stored line.
    execute(target, f"update {schema}.quality_lines_by_load_class set line_count = 0 where line_class = 'valid'")
    run_dbt("run", "--select", "quality_loads", "--full-refresh", target=target.name)
    status, output = dbt_test(target, LOAD_LOG_TEST)
    assert status != 0 and "FAIL 1" in output, output
