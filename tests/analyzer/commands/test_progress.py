"""The commands draw one progress bar per ranking stage with short candidate names, not a line per unit."""

from __future__ import annotations

import io

from analyzer.commands._progress import StageBars
from analyzer.ranking import ProgressEvent

SPECS = ["torchscript:/very/long/path/to/models/net_a.pt", "torchscript:/very/long/path/to/models/net_b.pt"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:  # tqdm draws only on a terminal
        return True


def _run(events: list[ProgressEvent], enabled: bool = True) -> str:
    out = _Terminal()
    bars = StageBars(SPECS, enabled=enabled, file=out)
    for event in events:
        bars.event(event)
    bars.close()
    return out.getvalue()


def test_one_bar_per_stage_labelled_with_short_names_and_completed_at_the_end() -> None:
    text = _run(
        [
            ProgressEvent("features", SPECS[0], "[rank] features: " + SPECS[0]),
            ProgressEvent("features", SPECS[1], "[rank] features: " + SPECS[1]),
            ProgressEvent("scores", SPECS[0], "[rank] knn: " + SPECS[0], unit="knn"),
        ]
    )
    finals = [chunk.strip() for chunk in text.replace("\n", "\r").split("\r") if "2/2" in chunk]
    assert any(line.startswith("features") for line in finals) and any(
        line.startswith("knn") for line in finals
    )
    assert "net_b" in text and "/very/long/path" not in text
    assert "[rank]" not in text


def test_a_failure_is_one_line_with_the_short_name_even_without_bars() -> None:
    text = _run(
        [ProgressEvent("features", SPECS[1], "[rank]   failed: ...", error="BackboneError: no weights")],
        enabled=False,
    )
    assert text == "failed: net_b: BackboneError: no weights\n"


def test_without_a_terminal_each_stage_ends_with_one_line_naming_its_nodes() -> None:
    """A log or CI has no bars: each stage says once that it ended, and how many of its units each node ran."""
    out = io.StringIO()  # not a terminal
    bars = StageBars(SPECS, file=out)
    for event in [
        ProgressEvent("features", SPECS[0], "", done=1, total=2, node="10.77.1.2/ab12cd34"),
        ProgressEvent("features", SPECS[1], "", done=2, total=2, node="10.77.1.1/ef56ab78"),
        ProgressEvent("scores", SPECS[0], "", done=1, total=2, node="10.77.1.2/ab12cd34", unit="knn"),
    ]:
        bars.event(event)
    bars.close()
    assert out.getvalue() == "features: 2/2 done (1 on 10.77.1.1/ef56ab78, 1 on 10.77.1.2/ab12cd34)\n"
