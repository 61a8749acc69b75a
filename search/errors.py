"""What can go wrong with a search, as sentences a person can act on."""


class SearchError(ValueError):
    """The query cannot be run; str(error) tells the person what to change."""


class SearchUnavailable(SearchError):
    """The server cannot run this kind of query now. str(error) is for everyone; `fix` (server paths,
    commands) is for staff only."""

    def __init__(self, message: str, *, fix: str = ""):
        super().__init__(message)
        self.fix = fix
