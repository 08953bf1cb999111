"""The API reference of the documentation site, generated from the package.

One page per public module, written into ``docs/api/`` (not committed) by
``docs/conf.py`` at every Sphinx build, from the package's own list of
modules (``jaxloss/_core/families.py``: the families, re-exported flat, then
``jaxloss.distributed``, ``jaxloss.nn`` and ``jaxloss.train``) and each
module's ``__all__``: its docstring, an ``autosummary`` table, then
``autofunction`` / ``autoclass`` for every name, so a family added to
``families.py`` gets its page with no edit here. The family losses are
documented under their flat names (``jaxloss.<name>``), the core names
(``reduce``, ``checked``, ``loss``, ``REDUCTIONS``) on their own page.

The same module parses the Google-style docstrings for
``tests/test_docs.py``, which fails when a public symbol lacks a part that
the contract (DESIGN.md §2.6) requires, or when a public name is on no
page::

  .venv/bin/python docs/apidoc.py   # write docs/api/ (conf.py does it too)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the checkout's jaxloss
  sys.path.insert(0, str(ROOT))

import jaxloss  # noqa: E402
from jaxloss._core import families  # noqa: E402

CORE = ["reduce", "checked", "loss", "REDUCTIONS"]
CONSTANTS = {  # reStructuredText: rendered on the API page
  "REDUCTIONS": "The valid values of every loss's ``reduction`` argument: "
  '``"none"``, ``"sum"``, ``"mean"``, ``"batchmean"`` (see '
  ":func:`jaxloss.reduce`).",
}
HELPERS = {"reduce", "checked", "loss", "distributed.shard"}  # and all of train

# What each kind of public name must document (DESIGN.md §2.6).
REQUIRED = {
  "loss": (
    "summary",
    "math",
    "args",
    "returns",
    "example",
    "references",
    "matches",
  ),
  "module": ("summary", "math", "args", "call", "example", "references"),
  "helper": ("summary", "args", "returns", "example"),
  "constant": ("summary",),  # described in CONSTANTS
}
_MATCHES = re.compile(
  r"\b([Mm]atch(es)?|[Ee]quals)\b|[Tt]he formula of"
  r"|[Nn]o (packaged )?reference implementation|counterpart"
)
_SECTION = re.compile(r"^(Args|Returns|References):\s*$")


@dataclasses.dataclass
class Entry:
  """One public name and the parts of its docstring."""

  qualname: str  # as a user writes it: jaxloss.x, jaxloss.nn.X
  kind: str  # loss | module | helper | constant
  signature: str = ""
  summary: str = ""
  math: list = dataclasses.field(default_factory=list)
  args: list = dataclasses.field(default_factory=list)  # [(names, text)]
  returns: str = ""
  matches: list = dataclasses.field(default_factory=list)
  references: str = ""
  example: bool = False
  call: str = ""  # a class: what calling it returns
  parameters: list = dataclasses.field(default_factory=list)

  def missing(self) -> list:
    """The parts its kind requires that the docstring lacks."""
    parts = [p for p in REQUIRED.get(self.kind, ()) if not getattr(self, p)]
    documented = {n for names, _ in self.args for n in names}
    parts += [
      f"Args entry for `{p}`"
      for p in self.parameters
      if self.kind != "constant" and p not in documented
    ]
    return parts


# --------------------------------------------------------------------------- #
# Parsing.


def _paragraphs(lines: list) -> list:
  blocks, block = [], []
  for line in lines + [""]:
    if line.strip():
      block.append(line)
    elif block:
      blocks.append(block)
      block = []
  return blocks


def _split(doc: str):
  """(summary lines, math blocks, sections {name: lines}, free paragraphs,
  has doctest)."""
  lines = doc.splitlines()
  paragraphs = _paragraphs(lines)
  summary = paragraphs[0] if paragraphs else []
  rest = lines[len(summary) :]
  sections, free, math, current = {}, [], [], None
  body = []
  i = 0
  while i < len(rest):
    line = rest[i]
    header = _SECTION.match(line)
    if header:
      current = header.group(1)
      sections[current] = []
      body.append("")
    elif current and (not line.strip() or line.startswith(" ")):
      sections[current].append(line)
    else:
      current = None
      if line.startswith(".. math::"):
        body.append("")
        expr = [line[len(".. math::") :].strip()]
        while i + 1 < len(rest) and (
          rest[i + 1].startswith(" ") or not rest[i + 1].strip()
        ):
          if not rest[i + 1].strip() and (
            i + 2 >= len(rest) or not rest[i + 2].startswith(" ")
          ):
            break
          i += 1
          expr.append(rest[i])
        math.append(inspect.cleandoc("\n".join(e for e in expr)).strip())
      else:
        body.append(line)
    i += 1
  example = any(line.lstrip().startswith(">>>") for line in lines)
  for block in _paragraphs(body):
    if not block[0].lstrip().startswith((">>>", "...")) and not any(
      line.lstrip().startswith(">>>") for line in block
    ):
      free.append(block)
  return summary, math, sections, free, example


def _args(lines: list) -> list:
  """``[(names, text)]`` from a Google-style Args section."""
  entries, joined = [], []
  for line in lines:  # a list of names may go on over two lines
    if joined and joined[-1].endswith(",") and re.match(r"^  \S", joined[-1]):
      joined[-1] += " " + line.strip()
    else:
      joined.append(line)
  for line in joined:
    head = re.match(r"^  (\*{0,2}[\w, *]+?):(\s|$)(.*)", line)
    if head and not line.startswith("   "):
      names = [n.strip().lstrip("*") for n in head.group(1).split(",")]
      entries.append((names, head.group(3).strip()))
    elif entries and line.strip():
      entries[-1] = (entries[-1][0], entries[-1][1] + " " + line.strip())
  return entries


def _join(lines) -> str:
  return " ".join(line.strip() for line in lines if line.strip())


def to_markdown(text: str) -> str:
  """The reStructuredText of the docstrings, as Markdown."""
  text = re.sub(r"`([^`<]+?)\s*<([^>]+)>`_+", r"[\1](\2)", text)
  text = re.sub(r":math:`([^`]+)`", r"$\1$", text)
  text = re.sub(
    r":(?:func|class|mod|meth|attr|data|obj):`~?([^`]+)`", r"`\1`", text
  )
  text = re.sub(r"``(.+?)``", r"`\1`", text)
  return text


def _default(value) -> str:
  if callable(value) and hasattr(value, "__name__"):
    module = getattr(value, "__module__", "") or ""
    prefix = {"jax.numpy": "jnp", "numpy": "np"}.get(
      module, "jnp" if module.startswith("jax.numpy") else module
    )
    return f"{prefix}.{value.__name__}"
  if isinstance(value, str):
    return '"' + value + '"'
  return repr(value)


def signature(name: str, obj) -> tuple:
  """(``name(params)`` without annotations, the documentable parameters)."""
  target = obj.__init__ if inspect.isclass(obj) else obj
  params = list(inspect.signature(target).parameters.values())
  if inspect.isclass(obj):
    params = params[1:]  # self
  parts, seen_star, documented = [], False, []
  for p in params:
    if p.kind is p.VAR_POSITIONAL:
      parts.append(f"*{p.name}")
      seen_star = True
      continue
    if p.kind is p.VAR_KEYWORD:
      parts.append(f"**{p.name}")
      documented.append(p.name)
      continue
    if p.kind is p.KEYWORD_ONLY and not seen_star:
      parts.append("*")
      seen_star = True
    documented.append(p.name)
    parts.append(
      p.name if p.default is p.empty else f"{p.name}={_default(p.default)}"
    )
  return f"{name}({', '.join(parts)})", documented


def entry(qualname: str, obj, kind: str) -> Entry:
  if not callable(obj):
    kind = "constant"
  if kind == "constant":
    return Entry(
      qualname,
      kind,
      signature=f"{qualname.split('.')[-1]} = {obj!r}",
      summary=CONSTANTS.get(qualname.split(".")[-1], ""),
    )
  doc = inspect.getdoc(obj) or ""
  summary, math, sections, free, example = _split(doc)
  sig, parameters = signature(qualname.split(".")[-1], obj)
  matches = [to_markdown(_join(b)) for b in free if _MATCHES.search(_join(b))]
  call = " ".join(
    to_markdown(_join(b))
    for b in free
    if kind == "module" and re.search(r"\breturns?\b", _join(b))
  )
  return Entry(
    qualname,
    kind,
    signature=sig,
    summary=to_markdown(_join(summary)),
    math=math,
    args=[
      (names, to_markdown(text))
      for names, text in _args(sections.get("Args", []))
    ],
    returns=to_markdown(_join(sections.get("Returns", []))),
    matches=matches if kind == "loss" else [],
    references=to_markdown(_join(sections.get("References", []))),
    example=example,
    call=call,
    parameters=parameters,
  )


def catalogue() -> list:
  """``[(title, module name, module summary, [Entry])]`` in catalogue order."""
  groups = []
  for module, title, _ in families.FAMILIES:
    mod = importlib.import_module(f"jaxloss.{module}")
    entries = [
      entry(f"jaxloss.{n}", getattr(mod, n), "loss")
      for n in sorted(mod.__all__)
    ]
    groups.append((title, f"jaxloss.{module}", mod, entries))
  core = [entry(f"jaxloss.{n}", getattr(jaxloss, n), "helper") for n in CORE]
  groups.append(("Reduction and value checks", "jaxloss", jaxloss, core))
  for module, title, kind in families.OTHER_MODULES:
    mod = importlib.import_module(f"jaxloss.{module}")
    entries = []
    for n in sorted(mod.__all__):
      k = "helper" if f"{module}.{n}" in HELPERS else kind
      entries.append(entry(f"jaxloss.{module}.{n}", getattr(mod, n), k))
    groups.append((title, f"jaxloss.{module}", mod, entries))
  return groups


# --------------------------------------------------------------------------- #
# The pages.

API = pathlib.Path(__file__).with_name("api")


def _slug(module: str) -> str:
  return module.replace(".", "_")


def _rst_title(text: str, underline: str = "=") -> list:
  return [text, underline * len(text), ""]


def page(title: str, module: str, entries: list) -> str:
  """The reStructuredText of one module's API page."""
  flat = module in {f"jaxloss.{m.name}" for m in families.FAMILIES}
  current = "jaxloss" if flat else module
  out = [f".. _api-{_slug(module)}:", ""]
  out += _rst_title(f"{title} (``{module}``)")
  if module == "jaxloss":
    out += [
      "The reduction, the value checks and the decorator that every loss",
      "shares (the rest of :mod:`jaxloss`'s docstring is on the API index).",
      "",
    ]
  else:
    out += [f".. automodule:: {module}", "  :no-members:", ""]
  if flat:
    out += [
      f"Every name below is also ``jaxloss.{module.split('.', 1)[1]}.<name>``;",
      "the flat name (``jaxloss.<name>``) is the one documented.",
      "",
    ]
  out += [f".. currentmodule:: {current}", "", ".. autosummary::", ""]
  names = [e.qualname.rsplit(".", 1)[1] for e in entries]
  out += [f"  {n}" for n in names] + [""]
  for e, name in zip(entries, names):
    directive = {
      "constant": "autodata",
      "module": "autoclass",
    }.get(e.kind, "autofunction")
    out += [f".. {directive}:: {name}", ""]
    if e.kind == "constant":  # no docstring of its own
      out += [f"  {CONSTANTS[name]}", ""]
  return "\n".join(out)


def pages() -> dict:
  """``{file name: text}`` of every API page and of the API index."""
  found, toc = {}, []
  for title, module, _, entries in catalogue():
    name = f"{_slug(module)}.rst"
    found[name] = page(title, module, entries)
    toc.append(name[:-4])
  index = _rst_title("API reference") + [
    ".. automodule:: jaxloss",
    "  :no-members:",
    "",
    "One page per module; each family's names are re-exported flat "
    "(``import jaxloss as jl; jl.<name>``), the sharded losses, the Flax "
    "modules and the training helpers stay in their modules. Names borrowed "
    "from other libraries are mapped in :doc:`../names`.",
    "",
    ".. toctree::",
    "  :maxdepth: 1",
    "",
  ]
  index += [f"  {n}" for n in toc]
  found["index.rst"] = "\n".join(index) + "\n"
  return found


def write(folder: pathlib.Path = API) -> list:
  """Writes the pages into ``folder`` (only the files whose text changed,
  so Sphinx rereads only those), removes stale ones; returns the names."""
  folder.mkdir(exist_ok=True)
  wanted = pages()
  for stale in set(p.name for p in folder.glob("*.rst")) - set(wanted):
    (folder / stale).unlink()
  for name, text in wanted.items():
    path = folder / name
    if not path.exists() or path.read_text() != text:
      path.write_text(text)
  return sorted(wanted)


def public_names() -> set:
  """Every public name as documented: ``jaxloss.<name>`` for the flat API,
  ``jaxloss.<module>.<name>`` for the other public modules."""
  names = {f"jaxloss.{n}" for n in jaxloss.__all__}
  for module in families.OTHER_MODULES:
    mod = importlib.import_module(f"jaxloss.{module.name}")
    names |= {f"jaxloss.{module.name}.{n}" for n in mod.__all__}
  return names


def check_site(html: pathlib.Path) -> list:
  """The public names that the built site's ``objects.inv`` lacks (an
  autodoc directive that failed to import its object documents nothing)."""
  from sphinx.util.inventory import InventoryFile

  with open(html / "objects.inv", "rb") as f:
    inventory = InventoryFile.load(f, "", pathlib.PurePosixPath.joinpath)
  found = set()
  for role in ("py:function", "py:class", "py:data"):
    found |= set(
      inventory.data.get(role, {})
      if hasattr(inventory, "data")
      else inventory.get(role, {})
    )
  return sorted(public_names() - found)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--check-site",
    type=pathlib.Path,
    metavar="HTML",
    help="exit 1 if the built site (its objects.inv) lacks a public name",
  )
  args = parser.parse_args()
  if args.check_site:
    missing = check_site(args.check_site)
    print(
      f"{args.check_site}: {len(public_names())} public names, "
      f"missing: {missing or 'none'}"
    )
    sys.exit(1 if missing else 0)
  print("\n".join(f"wrote {API / n}" for n in write()))


if __name__ == "__main__":
  main()
