"""The dashboard's one error type: a page that cannot be shown, with its HTTP code."""


class UiError(Exception):
    """A page that cannot be shown: the API's refusal, or the browser's bad request."""

    def __init__(self, code, message, title=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.title = title or {401: "Not logged in", 403: "Forbidden", 404: "Not found",
                               413: "Too large"}.get(code, "Error")
