"""Every error class survives the trip worker -> JSON -> client as the same class and message."""

import inspect
import json

import pytest
from brushwork import errors


def _classes():
    return [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
            if issubclass(cls, errors.BrushworkError) and cls.__module__ == errors.__name__]


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_error_round_trips_over_the_wire(cls):
    err = cls("steps", "must be between 1 and 200") if cls is errors.RecipeError else cls("it broke: 42")
    data = json.loads(json.dumps(err.to_dict()))
    back = errors.error_from_dict(data)
    assert type(back) is cls, f"{cls.__name__} has code {cls.code!r}, which the client table does not rebuild"
    assert str(back) == str(err)


def test_codes_are_unique():
    codes = [cls.code for cls in _classes()]
    assert len(codes) == len(set(codes))


def test_unknown_code_is_still_a_brushwork_error():
    back = errors.error_from_dict({"code": "from_the_future", "message": "new thing"})
    assert type(back) is errors.BrushworkError and str(back) == "new thing"
