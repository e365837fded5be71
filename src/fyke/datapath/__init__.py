"""Pure data-plane model: the table pipeline, register fields, flows and flow builders."""
