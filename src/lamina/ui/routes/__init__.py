"""The UI's routes, one module per page: sign-in, chat, collections, usage, keys."""
