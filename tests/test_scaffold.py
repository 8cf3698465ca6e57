"""The study scaffold: configs, results, progress, reports and the number formatter."""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from attnmech.errors import FileFormatError, InvalidParameterError
from attnmech.studies.scaffold import Progress, Report, StudyConfig, StudyResult, fmt, load_result


@dataclasses.dataclass(frozen=True)
class ToyConfig(StudyConfig):
    trials: int = 3
    settings: tuple[str, ...] = ("a", "b")
    _DEPRECATED_NAMES: ClassVar[Mapping[str, str]] = {"num_trials": "trials"}

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise InvalidParameterError(f"ToyConfig: trials must be >= 1; got {self.trials}")


@dataclasses.dataclass
class ToyResult(StudyResult):
    study: ClassVar[str] = "toy"
    config: ToyConfig
    values: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "values": self.values}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToyResult:
        return cls(ToyConfig.from_dict(data["config"]), list(data["values"]))

    def report(self) -> Report:
        return Report("Toy").table(["trial", "value"], list(enumerate(self.values)))


def test_config_round_trip_keeps_tuples_and_refuses_unknown_fields():
    config = ToyConfig(trials=5, settings=("x",))
    data = json.loads(json.dumps(config.to_dict()))
    assert data == {"trials": 5, "settings": ["x"]}
    assert ToyConfig.from_dict(data) == config
    with pytest.raises(InvalidParameterError, match="unknown field 'trails'"):
        ToyConfig.from_dict({"trails": 5})
    with pytest.raises(InvalidParameterError, match="trials must be >= 1"):
        ToyConfig.from_dict({"trials": 0})
    with pytest.warns(DeprecationWarning, match="'num_trials' is deprecated; use 'trials'"):
        assert ToyConfig.from_dict({"num_trials": 7}).trials == 7
    assert config.replace(trials=2).trials == 2


def test_result_writes_and_loads_itself(tmp_path):
    result = ToyResult(ToyConfig(trials=2), [0.5, 0.25])
    out = result.write(tmp_path / "run")
    payload = json.loads((out / "results.json").read_text())
    assert payload["study"] == "toy" and payload["values"] == [0.5, 0.25]
    assert (out / "REPORT.md").read_text() == (
        "# Toy\n\n| trial | value |\n|---:|---:|\n| 0 | 0.5 |\n| 1 | 0.25 |\n"
    )
    again = ToyResult.load(out)
    assert again.values == [0.5, 0.25] and again.config == result.config
    payload["study"] = "other"
    (out / "results.json").write_text(json.dumps(payload))
    with pytest.raises(FileFormatError, match="holds a 'other' result, not 'toy'"):
        ToyResult.load(out)
    with pytest.raises(FileFormatError, match="unknown study 'other'"):
        load_result(out)
    with pytest.raises(FileFormatError, match="cannot read"):
        ToyResult.load(tmp_path / "missing")


def test_progress_coerces_every_accepted_form():
    seen: list[str] = []
    progress = Progress.coerce(seen.append)
    with progress.stage(3, "fit") as advance:
        advance(3)
    assert seen == ["fit: started (3 it)", "fit: done"]
    assert Progress.coerce(progress) is progress
    silent = Progress.coerce(None)
    silent.message("nothing")  # no callback: nothing happens
    assert Progress.coerce(False).callback is None and not Progress.coerce(False).bar
    with pytest.raises(InvalidParameterError, match="progress must be"):
        Progress.coerce(3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.98437512, "0.9844"), (3, "3"), (2.5e-7, "2.5e-07"), (None, "n/a"), (float("nan"), "n/a"),
     (False, "no"), (float("inf"), "inf"), (-0.0, "-0"), ("text", "text")],
)
def test_fmt_is_the_one_number_format(value, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fmt(value) == expected
