import { cleanup, render } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { requestMessages, responseOutput, safeHttpUrl } from "../lib/messages";
import { MessageList } from "./Messages";
import type { JsonObject } from "../lib/types";

afterEach(cleanup);

const HOSTILE = `<script>window.__x=1</script><img src=x onerror="window.__x=2"><a href="javascript:window.__x=3">go</a>`;

describe("MessageList", () => {
  it("renders hostile content as text, with only http(s) links and no images", () => {
    const request: JsonObject = {
      messages: [
        { role: "system", content: HOSTILE },
        {
          role: "user",
          content: [
            { type: "text", text: "[x](javascript:alert(1))" },
            { type: "image_url", image_url: { url: "javascript:alert(1)" } },
            { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } },
            { type: "image_url", image_url: { url: "https://example.com/a.png" } },
          ],
        },
      ],
    };
    const { container } = render(<MessageList messages={requestMessages(request)} />);
    expect(container.querySelector("script, img, iframe")).toBeNull();
    const links = [...container.querySelectorAll("a")].map((a) => a.getAttribute("href"));
    expect(links).toEqual(["https://example.com/a.png"]);
    expect(container.textContent).toContain(HOSTILE);
    expect(container.textContent).toContain("javascript:alert(1)");
    expect(container.textContent).toContain("inline image/png");
    expect((window as unknown as { __x?: number }).__x).toBeUndefined();
  });

  it("renders roles, tool calls with arguments, and tool results", () => {
    const request: JsonObject = {
      system: "Be brief",
      messages: [
        { role: "user", content: "What is 6*7?" },
        { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "calc", input: { expr: "6*7" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "t1", content: "42" }] },
      ],
    };
    const { container } = render(<MessageList messages={requestMessages(request)} />);
    expect([...container.querySelectorAll(".msg")].map((m) => m.getAttribute("data-role"))).toEqual(["system", "user", "assistant", "user"]);
    expect(container.querySelector(".tool-call")!.textContent).toContain('"expr": "6*7"');
    expect(container.querySelector(".tool-result")!.textContent).toContain("42");
  });
});

describe("output extraction", () => {
  it("reads OpenAI, Anthropic and Responses API outputs", () => {
    expect(responseOutput({ choices: [{ message: { role: "assistant", content: "hi" } }] }).text).toBe("hi");
    expect(responseOutput({ type: "message", role: "assistant", content: [{ type: "text", text: "yo" }] }).text).toBe("yo");
    const responses = responseOutput({ output: [{ type: "message", role: "assistant", content: [{ type: "output_text", text: "ok" }] }, { type: "function_call", call_id: "c", name: "f", arguments: "{}" }] });
    expect(responses.text).toBe("ok");
    expect(responses.toolCalls.map((c) => c.name)).toEqual(["f"]);
    expect(responseOutput(null, "fallback").text).toBe("fallback");
  });

  it("accepts only http and https URLs", () => {
    expect(safeHttpUrl("https://a.b/c")).toBe("https://a.b/c");
    expect(safeHttpUrl("javascript:alert(1)")).toBeNull();
    expect(safeHttpUrl(" JAVASCRIPT:alert(1)")).toBeNull();
    expect(safeHttpUrl("data:text/html,<script>")).toBeNull();
  });
});
