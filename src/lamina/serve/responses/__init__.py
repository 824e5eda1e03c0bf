"""OpenAI's Responses API over the engine: input items, function tools, file_search, stored responses."""
