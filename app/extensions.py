"""Extension instances only; nothing here imports from the app package."""
from flask_jwt_extended import JWTManager
from flask_smorest import Api

api = Api()
jwt = JWTManager()
