from __future__ import annotations

import inspect

import privastead.errors as errors


def test_every_exception_derives_from_the_root() -> None:
    classes = [obj for _, obj in inspect.getmembers(errors, inspect.isclass)
               if issubclass(obj, BaseException) and obj.__module__ == errors.__name__]
    assert len(classes) >= 15
    for cls in classes:
        assert issubclass(cls, errors.PrivasteadError), cls


def test_all_is_complete_and_sorted() -> None:
    public = {name for name, obj in inspect.getmembers(errors, inspect.isclass)
              if obj.__module__ == errors.__name__}
    assert set(errors.__all__) == public
    assert errors.__all__ == sorted(errors.__all__)


def test_decryption_errors_say_nothing_specific() -> None:
    assert str(errors.DecryptionError()) == str(errors.DecryptionError())
