"""The import report: per kind of row, how many were read, imported, merged (folded into
a row that was already there: a duplicate account, a view in a window already counted, a
row of an earlier run), rejected (with a reason each), and notes on rows imported with a
change worth knowing (a cleared username, a legacy status mapped)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("users", "identities", "apps", "stars", "views", "audit_logs", "secrets", "sessions")


@dataclass
class KindReport:
    read: int = 0
    imported: int = 0
    merged: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    # A few row ids per rejection reason, so an operator can look them up in the source.
    examples: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0  # reading, checking and writing this kind

    def reject(self, reason: str, row_id: Any = None) -> None:
        self.rejected[reason] += 1
        if row_id is not None:
            shown = self.examples.setdefault(reason, [])
            if len(shown) < 5:
                shown.append(str(row_id)[:80])

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "imported": self.imported,
            "merged": self.merged,
            "rejected": self.rejected_total,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "rejected_examples": dict(sorted(self.examples.items())),
            "notes": dict(sorted(self.notes.items())),
            "seconds": round(self.seconds, 2),
        }


@dataclass
class ImportReport:
    source: str
    dry_run: bool
    kinds: dict[str, KindReport] = field(default_factory=lambda: {k: KindReport() for k in KINDS})
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rebuild_seconds: float = 0.0
    verify_clean: bool | None = None

    def __getitem__(self, kind: str) -> KindReport:
        return self.kinds[kind]

    @property
    def rows_read(self) -> int:
        return sum(k.read for k in self.kinds.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "seconds": round(self.seconds, 2),
            "rebuild_seconds": round(self.rebuild_seconds, 2),
            "rows_read": self.rows_read,
            "rows_per_second": round(self.rows_read / self.seconds) if self.seconds else None,
            "verify_clean": self.verify_clean,
            "kinds": {name: kind.as_dict() for name, kind in self.kinds.items()},
            "messages": self.messages,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=False) + "\n")

    def lines(self) -> list[str]:
        """The summary for a terminal: one line per kind, then the reasons."""
        out = [f"{'kind':<11} {'read':>9} {'imported':>9} {'merged':>9} {'rejected':>9}"]
        for name, k in self.kinds.items():
            out.append(
                f"{name:<11} {k.read:>9} {k.imported:>9} {k.merged:>9} {k.rejected_total:>9}"
            )
        for name, k in self.kinds.items():
            for reason, n in sorted(k.rejected.items()):
                out.append(f"  {name} rejected, {reason}: {n}")
            for note, n in sorted(k.notes.items()):
                out.append(f"  {name} note, {note}: {n}")
        out.extend(self.messages)
        return out
