"""Extension instances only; nothing here imports from the app package."""
import threading

import flask_smorest
from flask_jwt_extended import JWTManager


class Api(flask_smorest.Api):
    """flask-smorest's Api, documenting each blueprint when the document is first read rather than at registration.

    Building the OpenAPI document is most of what create_app() costs (about two thirds): the suite builds
    an app per test and reads the document in a few; a worker builds it once, on its first request for it.
    The document is the same, blueprint by blueprint in registration order.
    """

    def __init__(self, *args, **kwargs):
        self._lock = threading.Lock()
        super().__init__(*args, **kwargs)

    @property
    def spec(self):
        with self._lock:
            while self._undocumented:
                blp, app, name, parameters = self._undocumented.pop(0)
                blp.register_views_in_doc(self, app, self._spec, name=name, parameters=parameters)
                self._spec.tag({"name": name, "description": blp.description})
        return self._spec

    @spec.setter
    def spec(self, value):
        # init_app() starts a new document: blueprints of an earlier app are not owed to it.
        self._spec, self._undocumented = value, []

    def register_blueprint(self, blp, *, parameters=None, **options):
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._undocumented.append((blp, self._app, name, parameters))


api = Api()
jwt = JWTManager()
