"""`segprune bench` runs end to end and reports what the issue asks; no timing is asserted (shared CPUs)."""

from __future__ import annotations

import json

from segprune_core.cli import main


def test_bench_reports_medians_speedups_and_token_limit(demo_dir, tmp_path):
    out, table, png = tmp_path / "out.json", tmp_path / "table.md", tmp_path / "plot.png"
    argv = ["bench", "--model", "demo-qwen2-audio", "--retentions", "0.5,0.25", "--runs", "2", "--warmup", "0"]
    argv += ["--max-tokens", "3", "--json", str(out), "--markdown", str(table), "--plot", str(png), "--quiet"]
    assert main(argv + ["--server-overhead"]) == 0
    report = json.loads(out.read_text())
    rows = {row["retention"]: row for row in report["rows"]}
    assert sorted(rows) == [0.25, 0.5, 1.0]  # r = 1.0 is always measured as the baseline
    assert rows[1.0]["audio_tokens_kept"] == 750 and rows[0.25]["audio_tokens_kept"] == 180
    assert rows[0.25]["token_limit_speedup"] == round(rows[1.0]["prompt_tokens"] / rows[0.25]["prompt_tokens"], 3)
    for row in rows.values():
        assert row["prefill_ms"] > 0 and row["encoder_ms"] > 0 and row["prefill_speedup"] > 0
    assert rows[1.0]["prefill_speedup"] == 1.0
    assert report["details"][0]["summary"]["prefill"]["runs"] == 2
    assert report["server_overhead"]["runs"] == 2
    assert "prefill speedup" in table.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
