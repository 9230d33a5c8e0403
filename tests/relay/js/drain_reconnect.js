// The relay instance holding this socket is stopped (SIGTERM, by the test): it closes the socket
// with 1012 "service restart"; the phoenix client, with its default timings, reconnects by itself
// (to the other instance), rejoins with the last seq it has, and sends again. Run by
// tests/relay/test_drain.py: prints {"local_port"} once joined and sent (the test then signals the
// worker serving that port), and JSON with what happened on its last line.
"use strict";

const { Socket } = require("phoenix");
const WebSocket = require("ws");

const ENDPOINT = process.env.RELAY_ENDPOINT;
const CONV = process.env.CONVERSATION_ID;
const TOKEN = process.env.TOKEN;

let lastSeq = 0;
let joins = 0;
const closes = [];
const seqs = [];
const sent = [];

const socket = new Socket(ENDPOINT, { transport: WebSocket, params: { token: TOKEN } });
socket.onClose((event) => closes.push({ code: event.code, reason: event.reason }));
socket.onError((error) => console.error(`transport error: ${error && (error.message || error.code || error)}`));

const failTimer = setTimeout(() => {
  console.error(`timed out: joins=${joins} closes=${JSON.stringify(closes)} seqs=${seqs}`);
  process.exit(1);
}, 90000);

const channel = socket.channel(`conversation:${CONV}`, () => ({ last_seq: lastSeq }));
channel.on("new_message", ({ message }) => {
  seqs.push(message.seq);
  lastSeq = Math.max(lastSeq, message.seq);
});

function send(content, then) {
  channel.push("new_message", { content, message_type: "text", client_random: 5000 + sent.length })
    .receive("ok", (reply) => { sent.push(reply.message); then(); })
    .receive("error", (error) => { console.error(JSON.stringify(error)); process.exit(1); });
}

channel.join()
  .receive("ok", () => {
    joins += 1;
    if (joins === 1) {
      send("before the signal", () => console.log(JSON.stringify({ local_port: socket.conn._socket.localPort })));
    } else if (joins === 2) {
      send("after reconnecting", () => {
        clearTimeout(failTimer);
        console.log(JSON.stringify({ closes, joins, seqs, sent }));
        socket.disconnect(() => process.exit(0));
      });
    }
  })
  .receive("error", (error) => { console.error(`join refused: ${JSON.stringify(error)}`); });
socket.connect();
