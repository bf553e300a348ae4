// The GraphQL console's start-up (web/src/console.rs): GraphiQL over this
// node's endpoint. A plain script, run after React, ReactDOM and GraphiQL's
// bundle have set their globals.
//
// The page first asks for a bearer token (kept in sessionStorage: this tab
// only), then starts GraphiQL with it in the Headers tab as
// {"Authorization": "Bearer …"}, so that GraphiQL's first look at the schema
// is authorised. Queries and mutations send the Headers tab; a subscription's
// WebSocket sends it in its connection_init payload, which is where the
// server looks for a browser's token (browsers cannot set headers on a
// WebSocket).
'use strict';
(() => {
  const root = document.getElementById('graphiql');
  const http = new URL(root.dataset.endpoint, window.location.href);
  const ws = new URL(http);
  ws.protocol = http.protocol === 'https:' ? 'wss:' : 'ws:';

  // The Headers tab as of the last operation sent; read when the WebSocket
  // (re)connects.
  let headers = {};
  const inner = GraphiQL.createFetcher({
    url: http.href,
    subscriptionUrl: ws.href,
    wsConnectionParams: () => headers,
  });
  const fetcher = (params, options) => {
    headers = (options && options.headers) || {};
    return inner(params, options);
  };

  const defaultQuery = `# coldtrail's GraphQL API for recall investigators.
#
# Your token is in the Headers tab below.
# Ctrl-Enter runs the query; the Docs panel
# (top left) lists the whole schema.

{
  breaches(first: 10) {
    totalCount
    edges {
      node {
        rule
        explanation
        lot { id }
      }
    }
  }
}
`;

  const start = (token) => {
    root.hidden = false;
    ReactDOM.createRoot(root).render(
      React.createElement(GraphiQL, {
        fetcher,
        defaultQuery,
        headers: JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2),
        defaultEditorToolsVisibility: 'headers',
      }),
    );
  };

  const KEPT = 'coldtrail:console-token';
  const kept = sessionStorage.getItem(KEPT);
  if (kept) {
    start(kept);
    return;
  }
  const form = document.getElementById('token');
  form.hidden = false;
  root.hidden = true;
  form.token.focus();
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const token = form.token.value.trim();
    if (!token) return;
    sessionStorage.setItem(KEPT, token);
    form.remove();
    start(token);
  });
})();
