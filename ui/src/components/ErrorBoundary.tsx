import { Component, type ErrorInfo, type ReactNode } from "react";

export interface ErrorBoundaryProps {
  children: ReactNode;
  /** What is shown inside, for the card's title: "page", "span", "thread"… (default "view"). */
  what?: string;
  /** The id of the record shown inside (e.g. the span id): printed on the card, so the
   * user can report or look up the one record that could not be shown. */
  recordId?: string | null;
  /** Called when the user presses "Try again", before the children render again (e.g. to
   * refetch the record). */
  onReset?: () => void;
}

interface State {
  error: Error | null;
}

/** Shows what failed as an error card instead of unmounting the whole app (React
 * drops the entire tree on an uncaught render error): one record the UI cannot show
 * must not take the rest of Spanlab down with it. Key it by the record (or the path)
 * so moving to another one starts afresh. */
export class ErrorBoundary extends Component<ErrorBoundaryProps, State> {
  state: State = { error: null };

  static getDerivedStateFromError(error: unknown): State {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }

  componentDidCatch(error: Error, info: ErrorInfo): void {
    const id = this.props.recordId ? ` (${this.props.what ?? "record"} ${this.props.recordId})` : "";
    console.error(`Spanlab UI: a view failed to render${id}`, error, info.componentStack);
  }

  private retry = (): void => {
    this.props.onReset?.();
    this.setState({ error: null });
  };

  render(): ReactNode {
    const { error } = this.state;
    if (!error) return this.props.children;
    const what = this.props.what ?? "view";
    const { recordId } = this.props;
    return (
      <div className="error-note error-card" role="alert" data-testid="error-card">
        <h2>This {what} could not be shown</h2>
        {recordId && (
          <p className="error-card-id">
            {what === "view" ? "record" : what} id: <code data-testid="error-record-id">{recordId}</code>
          </p>
        )}
        <p className="error-card-message">
          {error.name && error.name !== "Error" ? `${error.name}: ` : ""}
          {error.message || String(error)}
        </p>
        <p className="small">The rest of Spanlab still works; the record itself is unchanged. Please report this error.</p>
        <button type="button" className="btn" onClick={this.retry}>
          Try again
        </button>
      </div>
    );
  }
}
