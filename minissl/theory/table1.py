"""Table 1 of Ziyin et al. (2023) as data: the Hessian at the origin and which collapses occur.

Each row gives the matrix ``B`` (the Hessian of the loss at ``W = 0`` is ``-2B``) with the
constants derived and measured in this project (docs/errata.md, tests/test_coefficients.py),
the paper's printed entry, and whether dimensional / complete collapse can occur
("there exists a hyperparameter setting and data distribution such that it happens",
the paper's definition). ``witness`` names a setting where the collapse happens; the tests
(tests/test_theory.py) check every witness against :func:`minissl.effective_B` and the
closed-form global minimum, and every "cannot" against random draws.

Notation: ``A0c`` is the centred clean covariance, ``v`` the number of views negatives
are drawn from, ``C`` the augmentation covariance.
"""

from __future__ import annotations

from ..losses.registry import REGISTRY, TABLE1_VARIANTS

__all__ = ["TABLE1", "table1", "format_table1"]

# rows of the losses and of the variants every loss takes come from the registry
# (minissl.losses.registry: the field ``table1`` and TABLE1_VARIANTS)
TABLE1 = tuple({"loss": s.table1["loss"], "key": s.name, "variant": None,
                **{k: v for k, v in s.table1.items() if k != "loss"}}
               for s in REGISTRY.values() if s.table1 is not None) + TABLE1_VARIANTS


def table1():
    """The rows of :data:`TABLE1` (copies) with a ``differs`` flag per row.

    ``differs`` is True where the paper's printed Hessian or collapse marks differ from
    the derived ones.
    """
    rows = []
    for row in TABLE1:
        r = dict(row)
        r["differs"] = bool(r["erratum"]) or (r["paper_dim"] is not None and
                                              (r["paper_dim"], r["paper_complete"]) != (r["dim"], r["complete"]))
        rows.append(r)
    return rows


def _mark(v):
    return "-" if v is None else ("yes" if v else "no")


def format_table1():
    """Table 1 as aligned text, with a column marking where the paper's entry differs."""
    head = ("loss", "B (derived)", "dim.", "compl.", "paper: B", "dim.", "compl.", "differs")
    body = [(r["loss"], r["hessian"], _mark(r["dim"]), _mark(r["complete"]), r["paper_hessian"],
             _mark(r["paper_dim"]), _mark(r["paper_complete"]),
             ("yes (" + r["erratum"] + ")") if r["erratum"] else ("yes" if r["differs"] else "no"))
            for r in table1()]
    widths = [max(len(str(x[i])) for x in (head, *body)) for i in range(len(head))]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*b) for b in body]
    lines.append("Hessian at W = 0 is -2B; 'dim.'/'compl.': dimensional/complete collapse possible. "
                 "Errata: docs/errata.md.")
    return "\n".join(lines)
