"""The top-level templates (where packagers look) and the packaged copies (what a wheel ships) agree."""

from pathlib import Path

import pytest

from service import launchd, systemd
from service.spec import template

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("canonical", [f"systemd/{systemd.UNIT}", f"launchd/{launchd.PLIST}"])
def test_packaged_template_is_identical_to_canonical(canonical: str) -> None:
    name = Path(canonical).name
    assert template(name) == (REPO / canonical).read_text(), (
        f"service/templates/{name} differs from {canonical}: cp {canonical} service/templates/")
