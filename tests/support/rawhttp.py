"""One HTTP/1.0 GET over a socket the test already holds (one made inside a netns, say)."""


def get(sock, path="/", host="x"):
    """Send GET ``path`` on ``sock``, read to EOF; return (status line, body), both bytes."""
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body
