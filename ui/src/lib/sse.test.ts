import { describe, expect, it } from "vitest";
import { readSse } from "./sse";

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(encoder.encode(c));
      controller.close();
    },
  });
}

describe("readSse", () => {
  it("parses events split anywhere across chunks, skipping comments", async () => {
    const text = ': hi\n\nevent: delta\ndata: {"content": "Hel"}\n\nevent: delta\r\ndata: {"content": "lo"}\r\n\r\nevent: done\ndata: {"id":\ndata: 1}\n\n';
    const chunks = [];
    for (let i = 0; i < text.length; i += 7) chunks.push(text.slice(i, i + 7));
    const events = [];
    for await (const e of readSse(streamOf(chunks))) events.push(e);
    expect(events).toEqual([
      { event: "delta", data: '{"content": "Hel"}' },
      { event: "delta", data: '{"content": "lo"}' },
      { event: "done", data: '{"id":\n1}' },
    ]);
  });
});
