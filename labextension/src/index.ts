/**
 * Cells whose source starts with `%%bpf` are edited as C; every other code cell keeps the
 * notebook's own language (Python for an IPython kernel).
 *
 * The language of a cell editor follows its model's `mimeType`. The notebook resets that mime
 * type on every code cell when it learns the kernel's language, so each cell model is watched
 * for both a change of its source and a change of its mime type, and the right one is put back.
 * The mime type is not saved in the notebook file: switching it never marks a notebook modified.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICellModel } from '@jupyterlab/cells';
import { INotebookTracker, Notebook, NotebookPanel } from '@jupyterlab/notebook';

/** The mime type CodeMirror's language registry maps to C. */
export const C_MIME_TYPE = 'text/x-csrc';

/** A `%%bpf` cell magic on the first non-blank line (IPython drops leading blank lines). */
const BPF_CELL = /^\s*%%bpf(\s|$)/;

/** Whether a cell's source is a `%%bpf` cell. */
export function isBpfCell(source: string): boolean {
  return BPF_CELL.test(source);
}

/** Give one code cell model the mime type its source calls for. */
function applyLanguage(notebook: Notebook, cell: ICellModel): void {
  if (cell.type !== 'code' || cell.isDisposed) {
    return;
  }
  const wanted = isBpfCell(cell.sharedModel.getSource())
    ? C_MIME_TYPE
    : notebook.codeMimetype;
  if (cell.mimeType !== wanted) {
    cell.mimeType = wanted;
  }
}

/** Keep one cell's language right for as long as the cell lives. */
function watchCell(notebook: Notebook, cell: ICellModel, watched: WeakSet<ICellModel>): void {
  if (watched.has(cell)) {
    return;
  }
  watched.add(cell);
  const apply = () => applyLanguage(notebook, cell);
  cell.contentChanged.connect(apply);
  cell.mimeTypeChanged.connect(apply);
  apply();
}

/** Watch every cell of a notebook, present and future. */
function watchNotebook(panel: NotebookPanel): void {
  const notebook = panel.content;
  const watched = new WeakSet<ICellModel>();
  const watchAll = () => {
    const cells = notebook.model?.cells;
    if (!cells) {
      return;
    }
    for (let i = 0; i < cells.length; i++) {
      watchCell(notebook, cells.get(i), watched);
    }
  };
  notebook.modelChanged.connect(watchAll);
  notebook.model?.cells.changed.connect(watchAll);
  notebook.modelChanged.connect(() => notebook.model?.cells.changed.connect(watchAll));
  void panel.context.ready.then(watchAll);
  watchAll();
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'ebpf-nb-highlight:plugin',
  description: 'Highlights %%bpf cells as C.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker) => {
    tracker.forEach(watchNotebook);
    tracker.widgetAdded.connect((_tracker, panel) => watchNotebook(panel));
  }
};

export default plugin;
