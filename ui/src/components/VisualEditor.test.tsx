import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { useState } from "react";
import { afterEach, describe, expect, it } from "vitest";
import { parseRequestJson, toJsonText } from "../lib/editor";
import type { JsonObject } from "../lib/types";
import { VisualEditor } from "./VisualEditor";

afterEach(cleanup);

function Harness({ initial, onRequest }: { initial: JsonObject; onRequest: (r: JsonObject) => void }) {
  const [request, setRequest] = useState(initial);
  return (
    <VisualEditor
      request={request}
      format="chat"
      models={["a", "b"]}
      onChange={(r) => {
        setRequest(r);
        onRequest(r);
      }}
    />
  );
}

describe("VisualEditor", () => {
  it("edits flow into the request, and its JSON round-trips", () => {
    let latest: JsonObject = {};
    const initial: JsonObject = {
      model: "a",
      temperature: 0.2,
      user: "keep-me",
      messages: [
        { role: "system", content: "S" },
        { role: "user", content: "Q" },
      ],
    };
    render(<Harness initial={initial} onRequest={(r) => (latest = r)} />);
    fireEvent.change(screen.getByLabelText("temperature"), { target: { value: "1.1" } });
    fireEvent.change(screen.getByLabelText("Message 2 content"), { target: { value: "Changed {{topic}}" } });
    fireEvent.change(screen.getByLabelText("Message 1 role"), { target: { value: "developer" } });
    fireEvent.click(screen.getByRole("button", { name: "+ assistant" }));
    fireEvent.click(screen.getByLabelText("Move message 3 up"));
    fireEvent.change(screen.getByLabelText("max_tokens"), { target: { value: "12" } });

    expect(latest).toEqual({
      model: "a",
      temperature: 1.1,
      user: "keep-me",
      max_tokens: 12,
      messages: [
        { role: "developer", content: "S" },
        { role: "assistant", content: "" },
        { role: "user", content: "Changed {{topic}}" },
      ],
    });
    const back = parseRequestJson(toJsonText(latest));
    expect(back.ok && back.value).toEqual(latest);
  });

  it("refuses an invalid parameter without touching the request", () => {
    let calls = 0;
    render(<Harness initial={{ model: "a", temperature: 0.5, messages: [] }} onRequest={() => (calls += 1)} />);
    fireEvent.change(screen.getByLabelText("temperature"), { target: { value: "9" } });
    expect(calls).toBe(0);
    expect(screen.getByText("temperature must be at most 2")).toBeTruthy();
  });

  it("removes a parameter when its box is emptied", () => {
    let latest: JsonObject = {};
    render(<Harness initial={{ model: "a", temperature: 0.5, messages: [] }} onRequest={(r) => (latest = r)} />);
    fireEvent.change(screen.getByLabelText("temperature"), { target: { value: "" } });
    expect("temperature" in latest).toBe(false);
  });
});
