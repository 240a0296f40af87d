"""Authentication, authorization and the reviews, as kube-apiserver has them.

authn.py and its token modules find who sent a request (``user.UserInfo``);
request_info.py reads what it asks for from the URL; authz.py decides, with
rbac.py and node.py; middleware.py puts both in front of the handlers.
"""
