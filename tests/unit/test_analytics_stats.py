"""Report statistics against closed forms and published examples: the t distribution, Welch, two proportions, cells."""
import math
from statistics import NormalDist

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copilot.analytics.stats import (
    Moments,
    cqs,
    incomplete_beta,
    mean_cell,
    mean_interval,
    rate_cell,
    t_cdf,
    t_critical,
    t_two_sided,
    two_proportions,
    welch,
    wilson,
)
from copilot.library.experiments import wilson as experiments_wilson

# R's `sleep` data set: extra hours of sleep under two drugs (Student, 1908).
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def moments(values: list[float]) -> Moments:
    return Moments(len(values), sum(values), sum(x * x for x in values))


@given(st.floats(-50, 50))
def test_the_t_cdf_with_one_degree_of_freedom_is_the_cauchy_distribution(t):
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)


@given(st.floats(-50, 50))
def test_the_t_cdf_with_two_degrees_of_freedom_has_its_closed_form(t):
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


@pytest.mark.parametrize("t", [0.5, 1.96, 2.5, 4.0])
def test_the_t_distribution_approaches_the_normal_as_the_degrees_of_freedom_grow(t):
    normal = 2 * (1 - NormalDist().cdf(t))
    assert t_two_sided(t, 1e7) == pytest.approx(normal, rel=1e-5)
    assert t_two_sided(t, 30) > t_two_sided(t, 1e7)  # heavier tails with fewer degrees of freedom


@pytest.mark.parametrize("df, critical", [(1, 12.706204736), (2, 4.302652730), (3, 3.182446305),
                                          (10, 2.228138852), (30, 2.042272456), (1000, 1.962339081)])
def test_the_95_percent_critical_t_matches_the_tables(df, critical):
    assert t_critical(float(df)) == pytest.approx(critical, abs=1e-8)


def test_the_incomplete_beta_function_is_symmetric_and_bounded():
    assert incomplete_beta(2.0, 3.0, 0.4) == pytest.approx(1 - incomplete_beta(3.0, 2.0, 0.6), abs=1e-14)
    assert incomplete_beta(1.0, 1.0, 0.3) == pytest.approx(0.3)  # the uniform distribution
    assert incomplete_beta(2.0, 2.0, 0.0) == 0.0 and incomplete_beta(2.0, 2.0, 1.0) == 1.0


def test_welch_matches_r_on_the_sleep_data():
    # t.test(extra ~ group, data = sleep): t = -1.8608, df = 17.776, p-value = 0.07939, CI -3.3654832 0.2054832
    result = welch(moments(SLEEP_1), moments(SLEEP_2))
    assert result == {"difference": -1.58, "ci95": [-3.3655, 0.2055], "p_value": 0.0794, "test": "welch_t"}


def test_welch_matches_the_textbook_example_of_two_samples_of_fifteen():
    a = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    b = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    assert welch(moments(a), moments(b))["p_value"] == pytest.approx(0.021, abs=0.0006)  # t = -2.46, df = 24.9


def test_welch_of_two_constant_groups_is_exact():
    assert welch(Moments(3, 12, 48), Moments(4, 16, 64)) == {"difference": 0.0, "ci95": [0.0, 0.0], "p_value": 1.0,
                                                              "test": "welch_t"}
    assert welch(Moments(3, 12, 48), Moments(3, 15, 75))["p_value"] == 0.0


def test_welch_against_a_group_below_the_minimum_is_too_few():
    assert welch(moments(SLEEP_1), Moments(1, 2.0, 4.0))["difference"] == "too few"
    assert welch(moments(SLEEP_1), moments(SLEEP_2), min_n=20) == {"difference": "too few", "ci95": None,
                                                                    "p_value": None, "test": "welch_t"}


def test_two_proportions_matches_the_chi_square_test_without_continuity_correction():
    # prop.test(c(15, 25), c(50, 50), correct = FALSE): X-squared = 4.1667, p-value = 0.04123
    result = two_proportions(15, 50, 25, 50)
    assert result["difference"] == -0.2 and result["p_value"] == 0.0412 and result["test"] == "two_proportion_z"


def test_two_proportions_interval_is_newcombes_hybrid_score_interval():
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339
    assert two_proportions(56, 70, 48, 80)["ci95"] == [0.0524, 0.3339]


def test_two_proportions_against_an_empty_group_is_too_few():
    assert two_proportions(3, 10, 0, 0)["difference"] == "too few"
    assert two_proportions(3, 10, 4, 10, min_n=30)["p_value"] is None


def test_wilson_matches_newcombes_example_and_stays_importable_from_experiments():
    low, high = wilson(81, 263)  # Newcombe (1998), Statistics in Medicine 17:857: 0.2553 to 0.3662
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert experiments_wilson is wilson


def test_mean_interval_uses_the_t_distribution():
    mean, low, high = mean_interval(*moments(SLEEP_1))
    sd = math.sqrt(sum((x - 0.75) ** 2 for x in SLEEP_1) / 9)
    assert mean == pytest.approx(0.75)
    assert high - mean == pytest.approx(2.262157163 * sd / math.sqrt(10), abs=1e-8)  # t(0.975, 9)
    assert mean - low == pytest.approx(high - mean)


def test_mean_interval_needs_two_values_for_an_interval_and_one_for_a_mean():
    assert mean_interval(0, 0, 0) == (None, None, None)
    assert mean_interval(1, 4.0, 16.0) == (4.0, None, None)


@given(st.lists(st.integers(1, 5), min_size=2, max_size=200))
def test_mean_interval_contains_the_mean_even_when_every_value_is_the_same(values):
    mean, low, high = mean_interval(*moments(values))
    assert low <= mean <= high


def test_a_rate_cell_gives_n_the_rate_and_its_wilson_interval_at_z_1_96():
    assert rate_cell(30, 100, 20) == {"n": 100, "successes": 30, "rate": 0.3, "ci95": [0.2189, 0.3959]}


def test_a_rate_cell_below_the_minimum_says_too_few():
    assert rate_cell(3, 19, 20) == {"n": 19, "rate": "too few", "ci95": None}
    assert rate_cell(0, 0, 0)["rate"] == "too few"


def test_a_mean_cell_gives_n_the_mean_and_its_interval_rounded():
    assert mean_cell(moments(SLEEP_1), 5) == {"n": 10, "mean": 0.75, "ci95": [-0.5298, 2.0298]}
    assert mean_cell(Moments(4, 10, 30), 5) == {"n": 4, "mean": "too few", "ci95": None}
    assert mean_cell(Moments(1, 4, 16), 1) == {"n": 1, "mean": 4.0, "ci95": None}


@pytest.mark.parametrize("items, scale, score", [
    ((5, 5, 5), 5, 100.0), ((1, 1, 1), 5, 0.0), ((3, None, None), 5, 50.0), ((7, 1, None), 7, 50.0),
    ((4, 5, 3), 5, 75.0), ((None, None, None), 5, None),
])
def test_the_connection_quality_score_is_the_mean_of_the_items_answered_on_a_0_to_100_scale(items, scale, score):
    assert cqs(*items, scale) == score


SAMPLE = st.lists(st.integers(0, 10), min_size=2, max_size=60)


@given(SAMPLE, SAMPLE)
def test_welch_is_antisymmetric_and_its_interval_holds_the_difference(a, b):
    forward, backward = welch(moments(a), moments(b)), welch(moments(b), moments(a))
    assert forward["difference"] == -backward["difference"] and forward["p_value"] == backward["p_value"]
    assert forward["ci95"][0] <= forward["difference"] <= forward["ci95"][1] and 0 <= forward["p_value"] <= 1


@given(st.integers(1, 500), st.integers(1, 500), st.data())
def test_two_proportions_interval_holds_the_difference_and_stays_within_minus_one_and_one(n1, n2, data):
    s1, s2 = data.draw(st.integers(0, n1)), data.draw(st.integers(0, n2))
    result = two_proportions(s1, n1, s2, n2)
    low, high = result["ci95"]
    assert -1 <= low <= result["difference"] <= high <= 1 and 0 <= result["p_value"] <= 1
