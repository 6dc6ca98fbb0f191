"""The user's documentation holds together: every relative link and anchor resolves, every
config key it names exists in the schema, and the README stays a guide (≤ 250 lines)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
SECTIONS = list(SCHEMA["properties"])
KEY = re.compile(r"(?<![\w/.<-])((?:" + "|".join(SECTIONS) + r")(?:\.[A-Za-z_]\w*)+)")
FILE_SUFFIXES = ("yaml", "md", "csv", "json", "html", "png", "py", "pt", "pkl", "zarr", "tsv", "txt")


def without_code_blocks(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def schema_has(key: str) -> bool:
    """Whether a dotted key is a property path of the config schema ($ref followed)."""
    node = SCHEMA
    for part in key.split("."):
        if "$ref" in node:
            node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
        properties = node.get("properties", {})
        if part not in properties:
            return False
        node = properties[part]
    return True


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    headings = re.findall(r"^#+ (.*)$", without_code_blocks(path.read_text(encoding="utf-8")), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_and_anchors_resolve(doc: Path):
    text = without_code_blocks(doc.read_text(encoding="utf-8"))
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.exists(), f"{doc.name}: link to missing {target}"
        assert linked.is_relative_to(REPO), f"{doc.name}: link outside the repository: {target}"
        if anchor:
            assert anchor in anchors(linked), f"{doc.name}: no heading for #{anchor} in {path or doc.name}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_config_key_named_exists(doc: Path):
    text = without_code_blocks(doc.read_text(encoding="utf-8"))
    named = {key for code in re.findall(r"`([^`\n]+)`", text) for key in KEY.findall(code)
             if key.rsplit(".", 1)[1] not in FILE_SUFFIXES}  # demo.yaml is a file
    unknown = sorted(key for key in named if not schema_has(key))
    assert not unknown, f"{doc.name} names config keys the schema does not have: {unknown}"


def test_the_checker_finds_a_wrong_key_and_link(tmp_path):
    assert schema_has("train.eval_every") and schema_has("dataset.train_source.annotation")
    assert not schema_has("train.eval_evry") and not schema_has("pose.options.openpifpaf.ckpt")
    page = tmp_path / "page.md"
    page.write_text("# Title\n[x](missing.md) [y](#title)\n")
    assert "title" in anchors(page) and not (tmp_path / "missing.md").exists()


def test_readme_is_a_guide_and_cites_nothing_users_lack():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    for doc in [*DOCS, *sorted((REPO / "config").glob("*.yaml"))]:
        text = doc.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text and "../shared" not in text, doc.name
        assert not re.search(r"\bTBD\b|\bTODO\b", text), f"{doc.name} has a placeholder"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
