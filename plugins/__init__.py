"""The built-in recognition providers: offline (local), CometAPI and useapi.net."""
