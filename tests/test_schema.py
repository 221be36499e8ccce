"""Schemathesis against the service's own OpenAPI schema: generated requests (valid and invalid)
must never produce a 5xx or a response that breaks the documented contract."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from de06qa.api import create_app
from de06qa.config import Settings
from de06qa.indexing import build_index

from .conftest import SEEDS, FakeEmbedder, FakeReader

# schemathesis reads the schema when this module is collected, so the app exists from the start;
# its index is built (fake embedder, ~1 s) by the fixture below. (schemathesis.pytest.from_fixture
# would be neater but fails on pytest 9.2: 'Function' object has no attribute '_nodeid'.)
_ROOT = Path(tempfile.mkdtemp(prefix="de06qa-schema-"))
SETTINGS = Settings(index_dir=_ROOT / "index", cache_dir=_ROOT / "cache", seeds_dir=SEEDS, reload_poll_s=0)
APP = create_app(SETTINGS, FakeEmbedder(), FakeReader())
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _service():
    build_index(SETTINGS, SEEDS, FakeEmbedder())
    APP.state.service.start()  # the lifespan's job; schemathesis calls the ASGI app directly
    yield
    APP.state.service.stop()
    shutil.rmtree(_ROOT, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_keeps_its_contract(case):
    case.call_and_validate()
