"""``local-folder``: the user's own recordings, from a directory or a CSV manifest.

Two ways in, because users arrive with one or the other:

- ``path``: every file with one of ``extensions`` under the directory (recursively). Captions
  come from a sidecar next to each file (``clip.json`` ``{"description": ...}`` as audiocraft
  writes them, else ``clip.txt``), from the file name, or are left empty. Splits: ``all``, plus
  one split per top-level sub-folder with ``subfolders_as_splits: true`` (``train/``, ``test/``).
- ``manifest``: a CSV with columns ``path`` and ``caption`` (``caption`` may be absent with
  ``captions: none``), optional ``id`` and a split column (``split_column``, default ``split``).
  Relative paths are resolved against the CSV's own directory, so a folder with its manifest can
  be moved as a whole. Other columns are kept as sample metadata.

Sample ids are the path relative to the root (directory, or the CSV's directory), with ``/``
separators, so they stay stable when the folder moves to another machine.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from harness import hookimpl
from harness.contracts import Sample
from harness.errors import ConfigError, DataError
from harness.inputs import check_path

from ._indexed import IndexedDataset

DEFAULT_EXTENSIONS = ["wav", "flac", "ogg", "mp3", "mid", "midi"]
CAPTION_MODES = ("sidecar", "filename", "none")
_SHOW = 5  # how many offending entries an error message lists


class LocalFolder(IndexedDataset):
    """Audio or MIDI files from a local directory or a CSV manifest."""

    path_params = ("path", "manifest")
    label = "local-folder"
    defaults = {
        "path": None,
        "manifest": None,
        "extensions": DEFAULT_EXTENSIONS,
        "captions": "sidecar",
        "split_column": "split",
        "subfolders_as_splits": False,
    }
    param_docs = {
        "extensions": "file types taken from 'path' (a list, or a comma-separated string)",
        "path": "a directory of recordings (searched recursively); give this or 'manifest'",
        "manifest": "a CSV with columns path, caption (and a split column); relative paths are "
                    "resolved against the CSV's directory",
        "captions": "sidecar (clip.json {description} or clip.txt next to each file) | "
                    "filename | none (empty captions)",
        "split_column": "the manifest column whose values are the split names (e.g. member, "
                        "nonmember)",
        "subfolders_as_splits": "with 'path': each top-level sub-folder is a split (members/, "
                                "nonmembers/); 'all' is always available",
    }
    param_choices = {"captions": CAPTION_MODES}

    def validate(self) -> None:
        p = self.params
        if (p["path"] is None) == (p["manifest"] is None):
            raise ConfigError("local-folder needs exactly one of 'path' (a directory of files) "
                              "or 'manifest' (a CSV with columns path, caption)")
        exts = p["extensions"]
        if isinstance(exts, str):
            exts = [e for e in exts.replace(",", " ").split()]
        if not exts or not all(isinstance(e, str) and e.strip(". ") for e in exts):
            raise ConfigError(f"local-folder: extensions must be a list like {DEFAULT_EXTENSIONS},"
                              f" got {p['extensions']!r}")
        p["extensions"] = sorted({e.strip(". ").lower() for e in exts})
        if p["captions"] not in CAPTION_MODES:
            raise ConfigError(f"local-folder: captions must be one of {', '.join(CAPTION_MODES)},"
                              f" got {p['captions']!r}")
        if not isinstance(p["split_column"], str) or not p["split_column"]:
            raise ConfigError("local-folder: split_column must be a column name")
        if p["subfolders_as_splits"] and p["manifest"] is not None:
            raise ConfigError("local-folder: subfolders_as_splits applies to 'path', not to "
                              "'manifest' (use its split column instead)")
        self._index: dict[str, list[Sample]] | None = None

    # ------------------------------------------------------------------

    def _load(self) -> dict[str, list[Sample]]:
        if self._index is None:
            self._index = (self._scan_manifest() if self.params["manifest"] is not None
                           else self._scan_folder())
        return self._index

    def _matches(self, path: Path) -> bool:
        return (path.suffix.lower().lstrip(".") in self.params["extensions"]
                and not path.name.startswith("."))

    def _scan_folder(self) -> dict[str, list[Sample]]:
        root = Path(self.params["path"]).expanduser()
        if not root.is_dir():
            raise DataError(f"local-folder: directory '{root}' does not exist"
                            if not root.exists() else
                            f"local-folder: '{root}' is a file, not a directory; pass a directory "
                            "as 'path' or a CSV as 'manifest'")
        root = root.resolve()
        files = sorted((p for p in root.rglob("*") if self._matches(p)
                        and not any(part.startswith(".") for part in p.relative_to(root).parts)),
                       key=lambda p: p.relative_to(root).as_posix())
        for p in files:  # a directory or a symlink loop named clip.wav is an error, not a skip
            if not p.is_file():
                check_path(p)
        if not files:
            raise DataError(f"local-folder found no files with extensions "
                            f"{', '.join(self.params['extensions'])} under {root}")
        index: dict[str, list[Sample]] = {"all": []}
        for f in files:
            rel = f.relative_to(root).as_posix()
            parts = rel.split("/")
            meta = {"relpath": rel, "extension": f.suffix.lower().lstrip(".")}
            sample = Sample(id=rel, path=os.fspath(f), caption=self._caption(f), metadata=meta)
            index["all"].append(sample)
            if self.params["subfolders_as_splits"] and len(parts) > 1:
                if parts[0] == "all":
                    raise DataError(f"local-folder: sub-folder 'all' under {root} clashes with "
                                    "the split of every file; rename it")
                index.setdefault(parts[0], []).append(sample)
        return {"all": index.pop("all"), **dict(sorted(index.items()))}

    def _caption(self, f: Path) -> str:
        mode = self.params["captions"]
        if mode == "none":
            return ""
        if mode == "filename":
            return " ".join(f.stem.replace("_", " ").replace("-", " ").split())
        js, txt = f.with_suffix(".json"), f.with_suffix(".txt")
        if js.is_file():
            try:
                data = json.loads(js.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DataError(f"local-folder: caption sidecar {js} is not valid JSON: {exc}")
            if isinstance(data, dict) and isinstance(data.get("description"), str):
                return data["description"].strip()
        if txt.is_file():
            return txt.read_text(encoding="utf-8").strip()
        return ""

    def _scan_manifest(self) -> dict[str, list[Sample]]:
        csv_path = Path(self.params["manifest"]).expanduser()
        if not csv_path.is_file():
            raise DataError(f"local-folder: manifest '{csv_path}' does not exist")
        csv_path = csv_path.resolve()
        base = csv_path.parent
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()}
                    for row in reader]
        need = ["path"] + ([] if self.params["captions"] == "none" else ["caption"])
        missing_cols = [c for c in need if c not in columns]
        if missing_cols:
            raise DataError(f"local-folder: manifest {csv_path} lacks column(s) "
                            f"{', '.join(missing_cols)}; it has: {', '.join(columns) or '(none)'}. "
                            "Required: path, caption (caption optional with captions: none)")
        split_col = self.params["split_column"]
        if split_col not in columns and split_col != self.defaults["split_column"]:
            raise DataError(f"local-folder: manifest {csv_path} has no split column "
                            f"'{split_col}'; it has: {', '.join(columns)}")
        has_split = split_col in columns
        if not rows:
            raise DataError(f"local-folder: manifest {csv_path} has no rows")
        index: dict[str, list[Sample]] = {}
        missing_files, seen = [], {}
        for line, row in enumerate(rows, start=2):
            if not row.get("path"):
                raise DataError(f"local-folder: {csv_path} line {line} has an empty path")
            f = Path(row["path"]).expanduser()
            f = f if f.is_absolute() else base / f
            if not f.is_file():
                if f.exists() or f.is_symlink():  # a directory, a loop, a broken link
                    try:
                        check_path(f)
                    except DataError as exc:
                        raise DataError(f"local-folder: {csv_path} line {line}: {exc}") from None
                missing_files.append(row["path"])
                continue
            try:
                rel = f.resolve().relative_to(base).as_posix()
            except ValueError:
                rel = f.resolve().as_posix()
            sid = row.get("id") or rel
            if sid in seen:
                raise DataError(f"local-folder: {csv_path} lines {seen[sid]} and {line} have the "
                                f"same id '{sid}'; ids must be unique")
            seen[sid] = line
            split = row.get(split_col, "") if has_split else "all"
            if not split:
                raise DataError(f"local-folder: {csv_path} line {line} has an empty "
                                f"'{split_col}' value")
            meta = {k: v for k, v in row.items() if k not in ("path", "caption", "id", split_col)}
            meta["relpath"] = rel
            index.setdefault(split, []).append(
                Sample(id=sid, path=os.fspath(f), caption=row.get("caption", ""), metadata=meta))
        if missing_files:
            raise DataError(f"local-folder: manifest {csv_path} lists {len(missing_files)} "
                            f"file(s) that do not exist (relative paths are resolved against "
                            f"{base}), e.g.: {', '.join(missing_files[:_SHOW])}")
        return {k: sorted(v, key=lambda s: s.id) for k, v in sorted(index.items())}


@hookimpl
def register_datasets(register):
    register("local-folder", "plugins.datasets.local_folder:LocalFolder",
             description="your own audio/MIDI files: a directory (sidecar/filename captions) or "
                         "a CSV manifest with path, caption[, id][, split]")
