// Starts Converse.js for /chat with the settings the server put in the page (see appliance/web/webchat.py).
import converse from "./chat/converse.min.js";

const page = JSON.parse(document.getElementById("parlour-chat").textContent);
const secure = location.protocol === "https:";

converse.initialize({
  assets_path: page.assets,
  // Same origin as the page: the certificate the browser already accepted, no CORS, no mixed content.
  websocket_url: `${secure ? "wss" : "ws"}://${location.host}/xmpp-websocket`,
  bosh_service_url: `${location.origin}/http-bind`,  // used when the WebSocket fails
  discover_connection_methods: false,
  view_mode: "fullscreen",
  default_domain: page.domain,
  domain_placeholder: page.domain,
  jid: page.jid || undefined,
  allow_registration: false,  // accounts come from invitations (or the administrator)
  auto_reconnect: true,
  show_images_inline: page.hosts,
  embed_audio: page.hosts,
  embed_videos: page.hosts,
  show_client_info: false,
  muc_nickname_from_jid: true,  // rooms open without asking for a nickname first
  loglevel: "warn",
});
