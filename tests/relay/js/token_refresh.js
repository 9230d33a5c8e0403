// A socket whose token expires: the relay closes it (4001 token_expired) and the phoenix client
// reconnects by itself, asking its `params` closure again (which hands out a fresh token), and
// rejoins its channel. Run by tests/reliability/test_token_expiry.py; prints JSON on its last line.
"use strict";

const { Socket } = require("phoenix");
const WebSocket = require("ws");

const ENDPOINT = process.env.RELAY_ENDPOINT;
const CONV = process.env.CONVERSATION_ID;
const USER = process.env.USER_ID;
const TOKENS = JSON.parse(process.env.TOKENS);

const tokensUsed = [];
let closeCode = null;
let joins = 0;

const socket = new Socket(ENDPOINT, {
  transport: WebSocket,
  params: () => {
    const token = TOKENS[Math.min(tokensUsed.length, TOKENS.length - 1)];
    tokensUsed.push(token);
    return { token, user_id: USER };
  },
  heartbeatIntervalMs: 1000,
  reconnectAfterMs: () => 100,
  rejoinAfterMs: () => 100,
});
socket.onClose((event) => {
  if (closeCode === null) closeCode = event.code;
});

const failTimer = setTimeout(() => {
  console.error(`timed out: joins=${joins} close=${closeCode} tokens=${tokensUsed.length}`);
  process.exit(1);
}, 60000);

const channel = socket.channel(`conversation:${CONV}`, {});
channel.join()
  .receive("ok", () => {
    joins += 1;
    if (joins < 2) return; // the first join: wait for the token to expire and the rejoin
    channel.push("new_message", { content: "after reconnecting", message_type: "text", client_random: 4242 })
      .receive("ok", (reply) => {
        clearTimeout(failTimer);
        console.log(JSON.stringify({ tokens_used: tokensUsed, close_code: closeCode, joins, sent: reply.message }));
        socket.disconnect(() => process.exit(0));
      })
      .receive("error", (error) => { console.error(JSON.stringify(error)); process.exit(1); });
  })
  .receive("error", (error) => { console.error(`join refused: ${JSON.stringify(error)}`); });
socket.connect();
