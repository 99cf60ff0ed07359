import { Component, type ErrorInfo, type ReactNode } from "react";

interface Props {
  children: ReactNode;
}

interface State {
  error: Error | null;
}

/** Shows what failed as an error card instead of unmounting the whole app (React
 * drops the entire tree on an uncaught render error): one record the UI cannot show
 * must not take the rest of Spanlab down with it. */
export class ErrorBoundary extends Component<Props, State> {
  state: State = { error: null };

  static getDerivedStateFromError(error: unknown): State {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }

  componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error("Spanlab UI: a view failed to render", error, info.componentStack);
  }

  render(): ReactNode {
    const { error } = this.state;
    if (!error) return this.props.children;
    return (
      <div className="error-note error-card" role="alert" data-testid="error-card">
        <h2>This view could not be shown</h2>
        <p>{error.message || String(error)}</p>
        <p className="small">The rest of Spanlab still works; the record itself is unchanged. Please report this error.</p>
      </div>
    );
  }
}
