"""A sample torchlint plugin: a house rule shipped as its own package.

torchlint finds the rule through the ``torchlint.rules`` entry point in this
package's ``pyproject.toml``; nothing else registers it.
"""

from torchlint_example.map_location import TorchLoadMapLocation

__all__ = ["TorchLoadMapLocation"]
