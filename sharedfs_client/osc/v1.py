"""`openstack filesystem …`: the `sharedfs` command's verbs as osc-lib commands, on the same Client and --wait.

Each command is thin: parse, call the Client that plugin.make_client built over OSC's session,
shape the answer for cliff's formatters (-f table|json|yaml|value|shell|csv, -c COLUMN). The
client's errors become one-line CommandErrors (exit 1), as every OSC command's do.
"""

from __future__ import annotations

from osc_lib import exceptions
from osc_lib.command import command

from ..cli import (
    DEFAULT_TIMEOUT,
    FS_COLUMNS,
    FS_FIELDS,
    FS_HEADINGS,
    INSTANCE_COLUMNS,
    INSTANCE_HEADINGS,
    ExitStatus,  # fmt: skip
    instances_with_age,
    wait_and_report,
)
from ..errors import ApiError, ClientError
from ..output import sanitize
from ..wait import Goal


class _Translated:
    """The client's errors as OSC's: one clean line, no traceback (--debug still shows one)."""

    def run(self, parsed_args):
        try:
            return super().run(parsed_args)
        except ApiError as e:
            raise exceptions.CommandError(f"{sanitize(e.message)} (HTTP {e.status})") from None
        except ClientError as e:
            raise exceptions.CommandError(f"cannot use the filesystem API: {sanitize(e)}") from None

    @property
    def client(self):
        return self.app.client_manager.filesystem

    def follow(self, name: str, goal: Goal, parsed_args) -> None:
        status = wait_and_report(self.client, name, goal, parsed_args.timeout, self.app.stderr)
        if status == ExitStatus.WAIT_FAILED:
            raise exceptions.CommandError(f"{sanitize(name)}: not {goal.want} (instances reporting errors above)")
        if status == ExitStatus.WAIT_TIMEOUT:
            raise exceptions.CommandError(f"{sanitize(name)}: timed out waiting for {goal.want}")


def _wait_options(parser, what: str):
    parser.add_argument("--wait", action="store_true",
                        help=f"follow the change until the instances' agents report it {what} (progress on stderr)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="<seconds>",
                        help=f"seconds --wait waits at most ({DEFAULT_TIMEOUT:.0f})")  # fmt: skip
    return parser


def _show(entry: dict):
    return FS_FIELDS, tuple(entry.get(field) for field in FS_FIELDS)


class CreateFilesystem(_Translated, command.ShowOne):
    """Create a filesystem (the server's driver makes its storage)"""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="<name>")
        parser.add_argument("--size", required=True, metavar="<size>", help="like 512Mb, 4Gb, 1Tb (binary units)")
        parser.add_argument("--scope", choices=("instance", "project", "global"),
                            help="instance (connect each; the default), project (every instance of it), global (admin)")
        parser.add_argument("--mount-point", metavar="<path>", help="absolute path on the instances (default /mnt/NAME)")
        parser.add_argument("--type", dest="fs_type", metavar="<fs-type>", help="fs_type (default: the driver's)")
        parser.add_argument("--option", dest="options", action="append", default=[], metavar="<mount-option>",
                            help="a mount option (repeat)")
        parser.add_argument("--export", metavar="<export>", help="register an existing export (admin; static driver)")
        return _wait_options(parser, "mounted")

    def take_action(self, parsed_args):
        created, entry = self.client.create_filesystem(
            parsed_args.name, parsed_args.size, scope=parsed_args.scope, mount_point=parsed_args.mount_point,
            fs_type=parsed_args.fs_type, mount_options=parsed_args.options, export=parsed_args.export)
        if not created:
            self.app.stderr.write(f"{sanitize(parsed_args.name)} already exists with these settings\n")
        if parsed_args.wait:
            self.follow(parsed_args.name, Goal("mounted"), parsed_args)
            entry = self.client.get_filesystem(parsed_args.name)
        return _show(entry)


class ListFilesystem(_Translated, command.Lister):
    """List the project's filesystems and the global ones"""

    def take_action(self, parsed_args):
        rows = self.client.list_filesystems()
        return FS_HEADINGS, [tuple(row.get(c) for c in FS_COLUMNS) for row in rows]


class _Named(_Translated):
    """A command on one filesystem, named by its first argument."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="<name>")
        return parser


class ShowFilesystem(_Named, command.ShowOne):
    """Show one filesystem"""

    def take_action(self, parsed_args):
        return _show(self.client.get_filesystem(parsed_args.name))


class DeleteFilesystem(_Named, command.Command):
    """Delete a filesystem and its storage (its instances unmount it)"""

    def get_parser(self, prog_name):
        return _wait_options(super().get_parser(prog_name), "unmounted and the filesystem gone")

    def take_action(self, parsed_args):
        self.client.delete_filesystem(parsed_args.name)
        if parsed_args.wait:
            self.follow(parsed_args.name, Goal("gone"), parsed_args)


class _InstanceCommand(_Translated, command.Command):
    """Connect or disconnect (the client's method named by `action`), then follow it to `goal`."""

    action = goal = ""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="<filesystem>")
        parser.add_argument("instance", metavar="<instance>", help="the instance's ID")
        return _wait_options(parser, self.goal)

    def take_action(self, parsed_args):
        getattr(self.client, self.action)(parsed_args.name, parsed_args.instance)
        if parsed_args.wait:
            self.follow(parsed_args.name, Goal(self.goal, parsed_args.instance), parsed_args)


class ConnectFilesystem(_InstanceCommand):
    """Connect an instance to a filesystem (its agent mounts it)"""

    action, goal = "connect", "mounted"


class DisconnectFilesystem(_InstanceCommand):
    """Disconnect an instance from a filesystem (its agent unmounts it)"""

    action, goal = "disconnect", "unmounted"


class FilesystemInstances(_Named, command.Lister):
    """Each instance of a filesystem: connected, mount state, detail, age of its last report"""

    def take_action(self, parsed_args):
        rows = instances_with_age(self.client, parsed_args.name)
        return INSTANCE_HEADINGS, [tuple(row.get(c) for c in INSTANCE_COLUMNS) for row in rows]


class ListInstance(_Translated, command.Lister):
    """List the project's registered instances"""

    def take_action(self, parsed_args):
        rows = self.client.list_instances()
        return ("ID", "Addresses"), [(row.get("id"), row.get("addresses")) for row in rows]
