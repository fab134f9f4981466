import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ILauncher } from '@jupyterlab/launcher';
import { LabIcon } from '@jupyterlab/ui-components';

import { requestAPI } from './request';

/** One Voila app, as `GET surveyhub/apps` lists it (from `surveyhub.apps.registry`). */
export interface IApp {
  name: string;
  title: string;
  description: string;
  icon: string;
  path: string;
  url: string;
}

const CATEGORY = 'Survey apps';

/**
 * Launcher tiles for the platform's Voila apps: each opens the app, rendered by Voila in this server,
 * in a new browser tab. The list comes from the server, so an app added to the registry needs no change
 * here.
 */
export const appsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'surveyhub-lab:apps',
  description:
    'Launcher tiles for the Voila apps (quick lookup, release explorer, ...).',
  autoStart: true,
  optional: [ILauncher],
  activate: async (app: JupyterFrontEnd, launcher: ILauncher | null) => {
    if (!launcher) {
      return;
    }
    let apps: IApp[];
    try {
      apps = (await requestAPI<{ apps: IApp[] }>('apps')).apps;
    } catch (error) {
      console.warn('surveyhub-lab: the apps list is not available', error);
      return;
    }
    apps.forEach((entry, rank) => {
      const command = `surveyhub-lab:open-app-${entry.name}`;
      const icon = new LabIcon({
        name: `surveyhub-lab:app-${entry.name}`,
        svgstr: entry.icon
      });
      app.commands.addCommand(command, {
        label: entry.title,
        caption: entry.description,
        icon,
        execute: () => {
          window.open(entry.url, '_blank', 'noopener');
        }
      });
      launcher.add({ command, category: CATEGORY, rank });
    });
  }
};
