"""Parameter validation: every wrong parameter stops with a message naming it."""

import pytest

from georobust.book import params
from georobust.book.params import ParameterError, resolve


def test_every_chapter_resolves_under_every_profile():
    for chapter in params.chapters():
        for profile in params.profiles():
            p = resolve(chapter, profile)
            assert p.profile == profile and p.seed >= 0


def test_profiles_differ_where_declared():
    tiny, paper = resolve("cohen-radius", "tiny"), resolve("cohen-radius", "paper")
    assert tiny.n_mc < paper.n_mc
    assert resolve("robustness-defined", "paper").dataset == "mnist"


def test_override_is_applied_and_converted():
    p = resolve("cohen-radius", "quick", {"sigma": 1, "sigmas": [0.25, 1]})
    assert p.sigma == 1.0 and isinstance(p.sigma, float)
    assert p.sigmas == (0.25, 1.0)
    assert p.overridden == ("sigma", "sigmas")


@pytest.mark.parametrize(
    "chapter, profile, overrides, words",
    [
        ("cohen-radius", "quick", {"sigmaa": 0.5}, ["'sigmaa'", "did you mean 'sigma'", "allowed:"]),
        ("cohen-radius", "quick", {"sigma": -0.5}, ["'sigma'", "> 0", "-0.5"]),
        ("cohen-radius", "quick", {"sigma": 0}, ["'sigma'", "> 0"]),
        ("cohen-radius", "quick", {"sigma": "big"}, ["'sigma'", "a number", "'big'"]),
        ("cohen-radius", "quick", {"alpha": 1.0}, ["'alpha'", "< 1"]),
        ("cohen-radius", "quick", {"n_mc": 10.5}, ["'n_mc'", "an integer"]),
        ("cohen-radius", "quick", {"n_mc": True}, ["'n_mc'", "an integer"]),
        ("cohen-radius", "quick", {"sigmas": []}, ["'sigmas'", "at least 1"]),
        ("cohen-radius", "quick", {"sigmas": [0.5, -1]}, ["'sigmas'", "every element > 0"]),
        ("cohen-radius", "quick", {"sigmas": 0.5}, ["'sigmas'", "a list of numbers"]),
        ("cohen-radius", "quick", {"device": "tpu"}, ["'device'", "one of auto, cpu, cuda, mps"]),
        ("cohen-radius", "quick", {"seed": -1}, ["'seed'", ">= 0"]),
        ("cohen-radius", "quick", {"dataset": None}, ["'dataset'", "one of auto, mnist, subset"]),
        ("cohen-radius", "fast", {}, ["unknown profile 'fast'", "tiny, quick, paper"]),
        ("cohen", "quick", {}, ["unknown chapter 'cohen'", "cohen-radius"]),
    ],
)
def test_bad_parameters_are_named(chapter, profile, overrides, words):
    with pytest.raises(ParameterError) as err:
        resolve(chapter, profile, overrides)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_nullable_parameter_accepts_none_only_where_declared():
    assert resolve("robustness-defined", "quick", {"n_test": None}).n_test is None
    with pytest.raises(ParameterError, match="'epochs'"):
        resolve("robustness-defined", "quick", {"epochs": None})


def test_params_are_read_only():
    p = resolve("neyman-pearson", "tiny")
    with pytest.raises(TypeError):
        p.values["mu"] = 3.0
    with pytest.raises(AttributeError, match="no parameter 'nope'"):
        p.nope  # noqa: B018


def test_log_path_separates_runs_with_overrides(tmp_path, monkeypatch):
    from georobust.book.chapter import Chapter

    monkeypatch.setenv("GEOROBUST_RESULTS", str(tmp_path))
    plain = Chapter("cohen-radius", "tiny").log_path("x.tsv")
    assert plain == tmp_path / "cohen-radius" / "tiny" / "x.tsv"
    assert Chapter("cohen-radius", "tiny", {"device": "cpu", "source": "compute"}).log_path("x.tsv") == plain
    a = Chapter("cohen-radius", "tiny", {"sigma": 0.25}).log_path("x.tsv")
    b = Chapter("cohen-radius", "tiny", {"sigma": 0.75}).log_path("x.tsv")
    assert len({plain, a, b}) == 3 and a.parent.name.startswith("tiny-")
