"""The pure helpers of ``scripts/benchmark.py``: figures, the table, /proc parsing, IDs, grid.

The benchmark itself measures (never a test: no timed asserts); what it computes from the
measures is checked here, so that the README's table cannot be wrong by arithmetic.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (scripts/ is not a package; its modules import each other)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


support = load("bench_support")
engines = load("bench_engines")
sim = load("bench_sim")
peer = load("bench_peer")

STATUS = """Name:\tpython3
VmPeak:\t  300000 kB
VmHWM:\t   81920 kB
VmRSS:\t   78848 kB
Threads:\t9
"""


def test_median_odd_even_and_empty() -> None:
    assert support.median([3.0, 1.0, 2.0]) == 2.0
    assert support.median([4.0, 1.0, 2.0, 3.0]) == 2.5
    with pytest.raises(ValueError, match="nothing"):
        support.median([])


def test_ratio_and_zero_reference() -> None:
    assert support.ratio(1.5, 1.0) == 1.5
    with pytest.raises(ValueError, match="not positive"):
        support.ratio(1.0, 0.0)


def test_spread_median_and_range() -> None:
    assert support.spread([0.47, 0.39, 0.41]) == "0.41 s (0.39-0.47)"
    assert support.spread([11, 11], "", 0) == "11 (11-11)"
    assert support.spread([79.42], " MiB", 1) == "79.4 MiB"


def test_markdown_table_rows_and_width_checked() -> None:
    text = support.markdown_table(["measure", "value"], [["a", "1"], ["b", "2"]])
    assert text.splitlines() == ["| measure | value |", "|---|---|", "| a | 1 |", "| b | 2 |"]
    with pytest.raises(ValueError, match="cells"):
        support.markdown_table(["measure", "value"], [["a"]])


def test_parse_status_rss_peak_threads() -> None:
    assert support.parse_status(STATUS) == {
        "peak_rss_mib": 80.0,
        "rss_mib": 77.0,
        "threads": 9.0,
    }


def test_severe_lines_above_warning_and_raw_text() -> None:
    lines = [
        '{"level": "info", "event": "run.finished"}',
        '{"level": "warning", "event": "lock.waiting"}',
        '{"level": "error", "event": "engine.failed"}',
        "Traceback (most recent call last):",
        "",
    ]
    assert support.severe_lines(lines) == [lines[2], lines[3]]


def test_fake_id_same_length_distinct_never_the_real_one() -> None:
    real = "CCQZ:6IL7:ZRJX:OOLN:UX3F:EN22:4SN2:ZXAZ:PT2S:EESW:BXAY:B4X7"
    ids = {engines.fake_id(real, i) for i in range(10)}
    assert len(ids) == 10
    assert real not in ids
    assert {len(i) for i in ids} == {len(real)}
    assert engines.fake_id("x" * 8 + "0003", 3) != "x" * 8 + "0003"


def test_sim_grid_points_in_order() -> None:
    assert sim.parse_grid("100:1,8;1000:32") == [(100, 1), (100, 8), (1000, 32)]
    with pytest.raises(ValueError, match="no point"):
        sim.parse_grid(" ; ")


def test_sim_fake_images_digest_is_the_stub_registry_answer() -> None:
    """A simulated container is fresh only if its image carries the digest the stub gives."""
    image = sim.image_inspect("127.0.0.1:5000", 7)
    assert image["RepoDigests"] == [f"127.0.0.1:5000/sim7@{sim.digest_of('sim7', '1')}"]
    assert image["RepoTags"] == ["127.0.0.1:5000/sim7:1"]


def test_peer_rows_ratio_of_medians_and_targets() -> None:
    """Each side-by-side row: both medians with their range, watchkeeper / ouroboros, target."""
    figures = {
        "peer": {
            "fresh_s": [2.0, 2.4, 2.2],
            "requests": [110, 110, 110],
            "update_s": [20.0, 24.0, 22.0],
            "fresh_rss": [47.0, 47.5, 47.3],
        },
        "watchkeeper": {
            "fresh_s": [0.6, 0.7, 0.66],
            "requests": [11, 11, 11],
            "update_s": [11.0, 12.0, 11.0],
            "fresh_rss": [50.9, 50.9, 50.9],
        },
    }
    rows = {row[0].split(":")[0]: row[1:] for row in peer.peer_rows(figures)}
    assert rows["nothing new, 50 containers"] == [
        "2.20 s (2.00-2.40)",
        "0.66 s (0.60-0.70)",
        "0.30x",
        "<= 0.3x",
    ]
    assert rows["registry requests, nothing new"][1:] == ["11 (11-11)", "0.10x", "<= 11"]
    assert rows["update of 25 of the 50 (watchkeeper"][2] == "0.50x"
    assert rows["peak RSS, nothing new"][2:] == ["1.08x", "<= 1x"]
    assert len(peer.PEER_HEADER) == 5
    assert not any(label.startswith("floor") for label in rows)  # not measured: no rows


def test_peer_rows_floor_against_ouroboros_whole_run() -> None:
    """The floor's rows: ouroboros' no-change run beside the import-only process, their ratio."""
    figures = {
        "peer": {
            "fresh_s": [2.0, 2.4, 2.2],
            "requests": [110],
            "update_s": [22.0],
            "fresh_rss": [47.0, 47.5, 47.3],
        },
        "watchkeeper": {"fresh_s": [0.66], "requests": [11], "update_s": [11.0], "fresh_rss": [51]},
        "floor": {"fresh_s": [0.44, 0.40, 0.48], "fresh_rss": [43.8, 43.7, 43.9]},
    }
    rows = {row[0].rsplit(":", 1)[1].strip(): row[1:] for row in peer.peer_rows(figures)[-2:]}
    assert rows["whole process"] == ["2.20 s (2.00-2.40)", "0.44 s (0.40-0.48)", "0.20x", "(floor)"]
    assert rows["peak RSS"] == ["47.3 MiB (47.0-47.5)", "43.8 MiB (43.7-43.9)", "0.93x", "(floor)"]


def test_peercleanup_noise_only_its_image_removal_complaints() -> None:
    """ouroboros' image cleanup complaints are not failures of its run; anything else is."""
    prefix = "2026-12-03 12:42:09 : ERROR : dockerclient : "
    assert peer.cleanup_noise(prefix + "5bdebbd50abb has no tags.. you should clean it up!")
    assert peer.cleanup_noise(prefix + "Could not delete old image for wk-1, Error: 409")
    assert not peer.cleanup_noise(prefix + "Can't connect to Docker API")


def test_engine_pairs_at_least_seven_whatever_repeat_says() -> None:
    """The many-engine ratio is measured over at least ENGINE_PAIRS pairs, more on request."""
    benchmark = load("benchmark")
    assert [benchmark.engine_pairs(n) for n in (1, 3, 7, 9)] == [7, 7, 7, 9]


def test_engine_rows_ratio_of_medians_against_the_bar() -> None:
    """Ten engines against one: the ratio is of the medians, the bar printed beside it."""
    benchmark = load("benchmark")
    figures = {
        "engines": 10,
        "one": {"wall_s": [0.7, 0.8, 0.9], "run_s": [0.1, 0.2, 0.3]},
        "many": {"wall_s": [1.0, 1.2, 1.6], "run_s": [0.3, 0.4, 0.5], "requests": [11, 11]},
    }
    rows = {row[0].split(":")[0]: row[1] for row in benchmark.engine_rows(figures)}
    assert rows["10 engines against 1"] == "1.50x / 2.00x"
    assert rows["registry requests per run, 10 engines x 10 images"] == "11 (11-11)"
