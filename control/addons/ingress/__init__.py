"""An Ingress controller: nginx configured from Ingresses, Services, EndpointSlices, Secrets.

render.py turns the objects into nginx.conf (a pure function); backends.py finds
a Service port's ready endpoint addresses; nginx.py checks and reloads the
running nginx; controller.py watches the API and puts the pieces together;
``python -m control.addons.ingress`` is the process the addon's DaemonSet runs.
"""

#: The IngressClass `steer up` creates, and the controller name it claims.
CLASS_NAME = "steer"
CONTROLLER_NAME = "steersman.io/ingress-nginx"
