from torchlint.rules.base import Rule


class SyntaxErrorRule(Rule):
    """
    ## What it does
    Reports a file that Python cannot parse, at the position of the error.

    ## Why is this bad?
    Code that does not parse cannot run, and no other rule can check it: the
    other findings for the file are withheld until it parses again.

    ## Example
    ```python
    for images, labels in loader
        outputs = model(images)
    ```

    ## Use instead
    ```python
    for images, labels in loader:
        outputs = model(images)
    ```

    ## Fix safety
    There is no automatic fix. This finding cannot be selected away or
    suppressed with `# noqa`.
    """

    code = "TL001"
    name = "syntax-error"
    message = "SyntaxError"
    # The engine reports it from the parser; it has no visitor of its own.
    triggers = ("\x00never",)
