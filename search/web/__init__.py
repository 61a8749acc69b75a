"""The search app over HTTP: the search, saved-search and near-duplicate pages (views, forms,
urls), the DRF API (api) and what every page's template gets (context_processors)."""
