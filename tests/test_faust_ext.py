"""streams.faust_ext: refuses faust-streaming / mode / aiokafka versions its private-API uses were not tested
with, and no other module uses those private names."""

import pytest

from streams import faust_ext
from streams.faust_ext import UntestedVersion, check_versions

TESTED_NOW = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}


def test_the_installed_versions_pass():
    check_versions()  # what import already did; fails if pyproject's pins and TESTED drift apart


@pytest.mark.parametrize(("package", "found"), [("faust-streaming", "0.16.0"), ("faust-streaming", "0.14.9"),
                                                ("aiokafka", "0.15.0"), ("mode-streaming", "1.0")])
def test_an_untested_version_is_refused_with_its_name(monkeypatch, package, found):
    monkeypatch.delenv(faust_ext.OVERRIDE_ENV, raising=False)
    with pytest.raises(UntestedVersion, match=f"{package} {found}"):
        check_versions({**TESTED_NOW, package: found})


def test_the_override_lets_an_untested_version_through(monkeypatch):
    monkeypatch.setenv(faust_ext.OVERRIDE_ENV, "1")
    check_versions({**TESTED_NOW, "faust-streaming": "0.16.0"})


def test_no_module_outside_faust_ext_touches_the_private_names_it_wraps():
    from pathlib import Path

    wrapped = ("._current_event", "._fetch_max_wait_ms", "buffer.max_messages", "._dbs", "._stopped",
               "._crashed", "_create_worker_consumer", "_new_consumer_thread")
    root = Path(__file__).resolve().parents[1]
    packages = ("amsrm", "amsrm_core", "streams", "producers")
    offenders = [f"{path.relative_to(root)}: {name}" for package in packages
                 for path in (root / package).rglob("*.py") if path.name != "faust_ext.py"
                 for name in wrapped if name in path.read_text()]
    assert offenders == []
