"""``attribution-list``: members and non-members of a model whose training list is public, from
the released attribution CSVs and the user's own downloads.

Stable Audio Open 1.0 ships, next to its weights, the attribution lists of its training data:
``freesound_dataset_attribution2.csv`` (472,618 Freesound sounds) and
``fma_dataset_attribution2.csv`` (13,874 Free Music Archive tracks). A recording on a list was
trained on; one from the same sources that is not (uploaded after the training cut-off, or never
selected) was not. The auditor downloads a sample of both; this plugin matches them to the lists.

What it reads:

- ``lists``: ``{source: CSV}``, e.g. ``{freesound: .../freesound_dataset_attribution2.csv,
  fma: .../fma_dataset_attribution2.csv}``. Each row names one recording by its ``id`` column
  (Freesound sound id, FMA track id) or, without one, by the number in its ``url``
  (``freesound.org/people/<user>/sounds/<id>/``). Other columns (title, author, license, url)
  are kept as sample metadata. **The column names are read from a third-party parser of the
  Freesound list (id, url, title, author, license); the released files themselves could not be
  read here, so the FMA list's layout is assumed to match. A CSV without an id or url column is
  refused with its header named.**
- ``recordings``: a folder of downloaded recordings with one sub-folder per source
  (``freesound/``, ``fma/``); a file's id is the first number in its name (``id_pattern``:
  Freesound downloads are named ``<id>__<user>__<name>.wav``, the FMA dataset's files
  ``<track id>.mp3``; leading zeros are ignored).
- ``nonmembers``: a folder laid out the same way, of recordings from the same sources that are
  **not** on the lists. A file there whose id *is* listed is an error (it is a member).

Splits: ``members`` (listed and present in ``recordings``), ``nonmembers``, and ``unlisted``
(files in ``recordings`` that are not on the lists, kept apart rather than silently dropped).
Captions come from a sidecar next to each file (``clip.json`` ``{"description"}`` or
``clip.txt``, as for ``local-folder``), the file name, or none.

Why a guard is needed: non-members uploaded after the cut-off differ from members in time
(recording gear, genres, upload conventions), which an attack can pick up without any
memorisation. The suite's blind baseline (``blind:``, on by default: model-free features and a
cross-fitted classifier on the same two sets) is the guard: a cell whose blind AUC is clearly
above chance is marked confounded. Each sample also carries ``source`` and the list's columns
as metadata, to stratify by source or license.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from harness import hookimpl
from harness.contracts import Sample
from harness.errors import ConfigError, DataError

from ._indexed import IndexedDataset

_SHOW = 5
FREESOUND_URL = re.compile(r"/sounds/(\d+)")
AUDIO_EXTENSIONS = ["wav", "flac", "ogg", "mp3"]


def _norm_id(text: str) -> str:
    text = text.strip()
    return str(int(text)) if text.isdigit() else text


def read_list(path: Path, source: str) -> dict[str, dict]:
    """{id: row} of one attribution CSV."""
    if not path.is_file():
        raise DataError(f"attribution-list: the {source} list '{path}' does not exist")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [(c or "").strip() for c in (reader.fieldnames or [])]
        lower = {c.lower(): c for c in columns}
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if "id" not in lower and "url" not in lower:
        raise DataError(f"attribution-list: the {source} list {path} has neither an 'id' nor a "
                        f"'url' column (its header: {', '.join(columns) or '(empty)'}); the "
                        "released attribution CSVs name each recording by id and url")
    out: dict[str, dict] = {}
    for line, row in enumerate(rows, start=2):
        rid = row.get(lower.get("id", ""), "")
        if not rid and "url" in lower:
            m = FREESOUND_URL.search(row.get(lower["url"], ""))
            rid = m.group(1) if m else ""
        if not rid:
            raise DataError(f"attribution-list: {path} line {line} names no recording (empty id "
                            "and no /sounds/<id> in its url)")
        out[_norm_id(rid)] = {k.lower(): v for k, v in row.items()}
    if not out:
        raise DataError(f"attribution-list: the {source} list {path} has no rows")
    return out


class AttributionList(IndexedDataset):
    """Listed (member) and unlisted (non-member) recordings of a model's public training list."""

    path_params = ("lists", "recordings", "nonmembers")
    label = "attribution-list"
    defaults = {
        "lists": None,
        "recordings": None,
        "nonmembers": None,
        "id_pattern": r"(\d+)",
        "captions": "sidecar",
        "extensions": AUDIO_EXTENSIONS,
    }
    param_docs = {
        "lists": "{source: CSV} of the released attribution lists, e.g. {freesound: "
                 "freesound_dataset_attribution2.csv, fma: fma_dataset_attribution2.csv}",
        "recordings": "folder of downloaded recordings, one sub-folder per source (freesound/, "
                      "fma/); listed ones are the members",
        "nonmembers": "folder of recordings from the same sources that are not on the lists, "
                      "same layout; a listed file there is an error",
        "id_pattern": "regex whose first group (or whole match) in a file name is the "
                      "recording's id (Freesound: <id>__<user>__<name>.wav; FMA: <track>.mp3)",
        "captions": "sidecar (clip.json {description} or clip.txt) | filename | none",
        "extensions": "audio file types taken from the folders",
    }

    def validate(self) -> None:
        p = self.params
        lists = p["lists"]
        if not isinstance(lists, dict) or not lists or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in lists.items()):
            raise ConfigError("attribution-list: 'lists' must map each source to its attribution "
                              "CSV, e.g. {freesound: freesound_dataset_attribution2.csv, fma: "
                              "fma_dataset_attribution2.csv}")
        for key in ("recordings", "nonmembers"):
            if not isinstance(p[key], str) or not p[key]:
                raise ConfigError(f"attribution-list: '{key}' (a folder with one sub-folder per "
                                  f"source: {', '.join(lists)}) is required")
        try:
            self._pattern = re.compile(p["id_pattern"])
        except (re.error, TypeError) as exc:
            raise ConfigError(f"attribution-list: id_pattern {p['id_pattern']!r} is not a "
                              f"regular expression: {exc}") from None
        if p["captions"] not in ("sidecar", "filename", "none"):
            raise ConfigError("attribution-list: captions must be sidecar, filename or none, "
                              f"got {p['captions']!r}")
        self._index: dict[str, list[Sample]] | None = None

    def _file_id(self, name: str) -> str | None:
        m = self._pattern.search(Path(name).stem)
        if not m:
            return None
        return _norm_id(m.group(1) if m.groups() else m.group(0))

    def _scan(self, folder: str, role: str) -> list[tuple[str, str, Sample]]:
        """(source, id, sample) of every recording under ``folder``/<source>/."""
        from plugins.datasets.local_folder import LocalFolder

        root = Path(folder).expanduser()
        if not root.is_dir():
            raise DataError(f"attribution-list: the {role} folder '{root}' does not exist")
        subs = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        unknown = [s for s in subs if s not in self.params["lists"]]
        if unknown:
            raise DataError(f"attribution-list: {root} has sub-folder(s) {', '.join(unknown)} "
                            f"that name no list; sources: {', '.join(self.params['lists'])}")
        loose = [f.name for f in root.iterdir() if f.is_file() and not f.name.startswith(".")
                 and f.suffix.lower().lstrip(".") in self.params["extensions"]]
        if loose:
            raise DataError(f"attribution-list: {root} has recordings outside a source "
                            f"sub-folder ({', '.join(loose[:_SHOW])}); put each under "
                            f"{'/ or '.join(self.params['lists'])}/")
        folder_ds = LocalFolder(path=str(root), extensions=self.params["extensions"],
                                captions=self.params["captions"], subfolders_as_splits=True)
        out, no_id = [], []
        for source in folder_ds.splits():
            if source == "all":
                continue
            for s in folder_ds.samples(source):
                rid = self._file_id(s.path)
                if rid is None:
                    no_id.append(s.metadata["relpath"])
                    continue
                out.append((source, rid, s))
        if no_id:
            raise DataError(f"attribution-list: {len(no_id)} file(s) under {root} have no id "
                            f"matching id_pattern {self.params['id_pattern']!r}, e.g.: "
                            f"{', '.join(no_id[:_SHOW])}")
        return out

    def _load(self) -> dict[str, list[Sample]]:
        if self._index is not None:
            return self._index
        lists = {src: read_list(Path(path).expanduser(), src)
                 for src, path in self.params["lists"].items()}
        index: dict[str, list[Sample]] = {"members": [], "nonmembers": [], "unlisted": []}
        seen: dict[str, str] = {}

        def add(split, source, rid, s, row):
            sid = f"{source}:{rid}"
            if sid in seen:
                raise DataError(f"attribution-list: {source} recording {rid} is present twice "
                                f"({seen[sid]} and {s.path}); keep one copy")
            seen[sid] = s.path
            meta = {**s.metadata, "source": source, "source_id": rid, "listed": row is not None}
            meta.update({f"list_{k}": v for k, v in (row or {}).items() if k != "id"})
            index[split].append(Sample(id=sid, path=s.path, caption=s.caption, metadata=meta))

        for source, rid, s in self._scan(self.params["recordings"], "recordings"):
            row = lists[source].get(rid)
            add("members" if row is not None else "unlisted", source, rid, s, row)
        listed_nonmembers = []
        for source, rid, s in self._scan(self.params["nonmembers"], "nonmembers"):
            if rid in lists[source]:
                listed_nonmembers.append(f"{source}/{Path(s.path).name}")
                continue
            add("nonmembers", source, rid, s, None)
        if listed_nonmembers:
            raise DataError(f"attribution-list: {len(listed_nonmembers)} recording(s) in the "
                            "nonmembers folder are on the attribution lists, so they are "
                            f"members: {', '.join(listed_nonmembers[:_SHOW])}; move them to "
                            "the recordings folder")
        for split in ("members", "nonmembers"):
            if not index[split]:
                raise DataError(f"attribution-list: no {split} found (recordings: "
                                f"{self.params['recordings']}, nonmembers: "
                                f"{self.params['nonmembers']}); check the folders' "
                                "source sub-folders and id_pattern")
        self._index = {k: sorted(v, key=lambda s: s.id) for k, v in index.items()}
        return self._index


@hookimpl
def register_datasets(register):
    register("attribution-list", "plugins.datasets.attribution_list:AttributionList",
             description="a model's released training attribution lists (Stable Audio Open: "
                         "Freesound/FMA CSVs) + your downloads: listed = members, a folder of "
                         "unlisted recordings from the same sources = non-members")
