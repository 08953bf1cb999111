"""Every shared property of the jaxloss contract, over every registered loss."""

import pytest

from jaxloss import testing
from tests.conftest import all_cases, public_helpers

CASES = all_cases()

PARAMS = [
  pytest.param(case, prop, id=f"{case.id}-{prop}")
  for case in CASES
  for prop in testing.PROPERTIES
  if testing.applicable(case, prop)
]


@pytest.mark.parametrize("case,prop", PARAMS)
def test_property(case, prop):
  testing.PROPERTIES[prop](case)


def test_registry_covers_every_public_loss():
  import jaxloss

  registered = {case.fn.__name__ for case in CASES}
  helpers = public_helpers()
  losses = {
    name
    for name in jaxloss.__all__
    if name not in helpers and callable(getattr(jaxloss, name))
  }
  assert losses - registered == set()
