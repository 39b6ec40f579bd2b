import numpy as np

from ouroboros.seeding import generator, seed_sequence


def test_same_key_same_stream_in_any_order():
    a1 = generator("study", "exp", "replace", 0, 5, "fit").random(4)
    generator("other").random(100)
    a2 = generator("study", "exp", "replace", 0, 5, "fit").random(4)
    np.testing.assert_array_equal(a1, a2)


def test_every_key_element_matters():
    base = ("study", "exp", "replace", 0, 5, "fit")
    ref = generator(*base).random(4)
    for i in range(len(base)):
        key = list(base)
        key[i] = key[i] + 1 if isinstance(key[i], int) else key[i] + "x"
        assert not np.allclose(generator(*key).random(4), ref)


def test_int_and_str_keys_differ():
    assert seed_sequence(1).entropy != seed_sequence("1").entropy
