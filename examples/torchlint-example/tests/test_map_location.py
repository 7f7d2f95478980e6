"""EX101's tests, with torchlint's own rule test kit (as torchlint tests its built-in rules)."""

from torchlint.testing import RuleTester, rule_tests

from torchlint_example import TorchLoadMapLocation

# Every VALID example is silent, every INVALID one is flagged and fixed as it says; the docs are complete.
test_valid, test_invalid, test_documentation = rule_tests(TorchLoadMapLocation)

RULE = RuleTester(TorchLoadMapLocation)


def test_a_device_given_positionally_counts():
    assert RULE.lines(
        """
        import torch
        a = torch.load(path, device)
        b = torch.load(path)
        """
    ) == [4]


def test_the_fix_is_unsafe_and_keeps_the_other_arguments():
    code = "import torch\nstate = torch.load(f, weights_only=True)\n"
    assert RULE.fixed(code) == code  # unsafe fixes need asking for
    assert RULE.fixed(code, unsafe=True) == 'import torch\nstate = torch.load(f, weights_only=True, map_location="cpu")\n'
    (finding,) = RULE.findings(code)
    assert finding.fix is not None and finding.fix.applicability == "unsafe"


def test_serialization_load_is_the_same_function():
    assert RULE.lines("from torch.serialization import load\nload(f)\n") == [2]
