import { cleanup, fireEvent, render } from "@testing-library/react";
import { useState } from "react";
import { afterEach, describe, expect, it } from "vitest";
import { clampWidth, ResizeHandle, STEP_PX, widthForKey } from "./ResizeHandle";

afterEach(cleanup);

describe("widthForKey", () => {
  it("widens on ArrowLeft, narrows on ArrowRight, within bounds", () => {
    expect(widthForKey("ArrowLeft", 400, 300, 800)).toBe(400 + STEP_PX);
    expect(widthForKey("ArrowRight", 400, 300, 800)).toBe(400 - STEP_PX);
    expect(widthForKey("ArrowRight", 310, 300, 800)).toBe(300);
    expect(widthForKey("End", 400, 300, 800)).toBe(800);
    expect(widthForKey("Home", 400, 300, 800)).toBe(300);
    expect(widthForKey("j", 400, 300, 800)).toBeNull();
    expect(clampWidth(900, 300, 200)).toBe(200); // a narrow window: max wins
  });
});

function Harness() {
  const [width, setWidth] = useState(400);
  return <ResizeHandle width={width} min={300} max={600} onResize={setWidth} label="Resize" />;
}

describe("ResizeHandle", () => {
  it("is a focusable separator whose value the arrow keys change", () => {
    const { getByRole } = render(<Harness />);
    const handle = getByRole("separator");
    expect(handle.getAttribute("tabindex")).toBe("0");
    expect(handle.getAttribute("aria-valuenow")).toBe("400");
    fireEvent.keyDown(handle, { key: "ArrowLeft" });
    fireEvent.keyDown(handle, { key: "ArrowLeft" });
    expect(handle.getAttribute("aria-valuenow")).toBe(String(400 + 2 * STEP_PX));
    fireEvent.keyDown(handle, { key: "End" });
    expect(handle.getAttribute("aria-valuenow")).toBe("600");
  });
});
