"""SPICE (Anderson et al. 2016), and so SPIDEr = (CIDEr-D + SPICE) / 2, when its Java jars are installed.

SPICE is a Java program (spice-1.0.jar) that needs Stanford CoreNLP 3.6.0 and its models jar in
`lib/`. aac-metrics and pycocoevalcap download those at first use, which is impossible offline, so
segprune only looks for an existing installation and, if there is none, reports SPIDEr as unavailable
with the reason; it never substitutes another number. Where it looks, in order:
`--spice-dir`, $SEGPRUNE_SPICE_DIR, aac-metrics' cache ($AAC_METRICS_CACHE_PATH or ~/.cache, then
`aac-metrics/spice`, as `aac-metrics-download` lays it out). The command is the one aac-metrics runs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SPICE_JAR = "spice-1.0.jar"
CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


@dataclass(frozen=True)
class SpiceSetup:
    jar: Path | None
    java: str | None
    reason: str = ""  # why SPICE is unavailable; empty when it is available

    @property
    def available(self) -> bool:
        return not self.reason


def candidate_dirs(spice_dir: Path | None = None) -> list[Path]:
    if spice_dir is not None:
        return [spice_dir]
    dirs = []
    if os.environ.get("SEGPRUNE_SPICE_DIR"):
        dirs.append(Path(os.environ["SEGPRUNE_SPICE_DIR"]))
    cache = Path(os.environ.get("AAC_METRICS_CACHE_PATH", Path.home() / ".cache"))
    dirs.append(cache / "aac-metrics" / "spice")
    return dirs


def find_spice(spice_dir: Path | None = None) -> SpiceSetup:
    java = shutil.which("java")
    if java is None:
        return SpiceSetup(None, None, "no Java runtime on PATH (SPICE is a Java program)")
    try:
        subprocess.run([java, "-version"], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return SpiceSetup(None, java, f"the Java runtime at {java} does not run: {exc}")
    searched = candidate_dirs(spice_dir)
    for directory in searched:
        jar = directory / SPICE_JAR
        if not jar.is_file():
            continue
        missing = [name for name in CORENLP_JARS if not (directory / "lib" / name).is_file()]
        if missing:
            return SpiceSetup(
                jar,
                java,
                f"{directory / 'lib'} lacks {', '.join(missing)} (Stanford CoreNLP 3.6.0, which aac-metrics-download "
                "fetches from the internet)",
            )
        return SpiceSetup(jar, java)
    where = ", ".join(str(d) for d in searched)
    return SpiceSetup(
        None,
        java,
        f"no {SPICE_JAR} with Stanford CoreNLP 3.6.0 jars found (looked in {where}); install them with "
        "`aac-metrics-download` on a machine with internet access, or pass --spice-dir",
    )


def spice_scores(
    candidates: Sequence[str], references: Sequence[Sequence[str]], setup: SpiceSetup, timeout: float = 3600.0
) -> list[float]:
    """SPICE F-score of each candidate (NaN where SPICE gives none)."""
    if not setup.available or setup.jar is None or setup.java is None:
        raise RuntimeError(f"SPICE is unavailable: {setup.reason}")
    items = [
        {"image_id": i, "test": c, "refs": list(r)} for i, (c, r) in enumerate(zip(candidates, references, strict=True))
    ]
    with tempfile.TemporaryDirectory(prefix="segprune-spice-") as scratch:
        inputs, outputs, cache = Path(scratch) / "in.json", Path(scratch) / "out.json", Path(scratch) / "cache"
        cache.mkdir()
        inputs.write_text(json.dumps(items))
        command = [setup.java, "-jar", "-Xmx8G", str(setup.jar), str(inputs)]
        command += ["-cache", str(cache), "-out", str(outputs), "-subset", "-silent"]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout, cwd=setup.jar.parent)
        results = {item["image_id"]: item for item in json.loads(outputs.read_text())}
    return [_f_score(results[i]) for i in range(len(items))]


def _f_score(item: dict) -> float:
    try:
        value = float(item["scores"]["All"]["f"])
    except (KeyError, TypeError, ValueError):
        return math.nan
    return value
