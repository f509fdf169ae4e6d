"""The console's pages, one router per group; `app.create_app` includes them all."""
