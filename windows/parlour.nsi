; Parlour for Windows: the NSIS installer (RECIPES.md §5). Built by windows/build.sh (`make windows`):
;     makensis -DVERSION=0.1.0 -DOUTFILE=parlour-setup-0.1.0.exe parlour.nsi   (parlour.exe beside it)
;
; Installs parlour.exe under Program Files, keeps config and data in C:\ProgramData\Parlour (no config is
; shipped: on a fresh install the service starts in setup mode and the wizard writes parlour.toml there;
; an upgrade never touches it), registers the service "Parlour" (auto start, restart on failure) running
; as the virtual account NT SERVICE\Parlour with write access to that folder only, and starts it, opens
; the firewall for 5222, 5223, 5280 and 5443 on domain and private networks, and adds "Parlour setup" to
; the Start menu (opens the setup wizard). Silent: `parlour-setup-0.1.0.exe /S`. The installer is not
; signed: SmartScreen warns (docs/packages.md, "Code signing").
; The uninstaller keeps the data unless asked: a question (default No), or `uninstall.exe /S /PURGE`.
Unicode true
Target amd64-unicode        ; pitfall 6: the default 32-bit stub needs wine32 and does nothing under wine64
!include "LogicLib.nsh"
!include "x64.nsh"
!include "FileFunc.nsh"

!ifndef VERSION
  !define VERSION "0.1.0"
!endif
!ifndef OUTFILE
  !define OUTFILE "parlour-setup-${VERSION}.exe"
!endif
!define SERVICE "Parlour"
!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\Parlour"
!define FIREWALL_RULE "Parlour XMPP"
!define PORTS "5222,5223,5280,5443"

Name "Parlour ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\Parlour"
RequestExecutionLevel admin
SetCompressor /SOLID lzma
ShowInstDetails show
ShowUninstDetails show
VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "Parlour XMPP server"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "Parlour XMPP server installer"
VIAddVersionKey "LegalCopyright" "Parlour Developers, AGPL-3.0-or-later"

Page directory
Page instfiles
UninstPage uninstConfirm
UninstPage instfiles

Function .onInit
  SetRegView 64
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP "Parlour needs 64-bit Windows." /SD IDOK
    Abort
  ${EndIf}
FunctionEnd

; StopService: stop the service if it runs.
!macro StopService
  nsExec::ExecToLog 'sc.exe stop ${SERVICE}'
  Pop $0
!macroend

; WaitForExe: the one-file parlour.exe stays locked until its process has exited, which comes after the
; service manager says "stopped" (the executable then removes what it unpacked) and can take many seconds
; on a busy machine. Wait until the file can be opened for writing (it can be replaced or deleted), at
; most 120 s, instead of guessing a delay.
!macro WaitForExe
  StrCpy $R9 0
  ${DoWhile} ${FileExists} "$INSTDIR\parlour.exe"
    ClearErrors
    FileOpen $R8 "$INSTDIR\parlour.exe" a
    ${IfNot} ${Errors}
      FileClose $R8
      ${Break}
    ${EndIf}
    IntOp $R9 $R9 + 1
    ${If} $R9 >= 120
      ${Break}
    ${EndIf}
    Sleep 1000
  ${Loop}
!macroend

; DeleteExe: delete parlour.exe, retrying while it is still locked (see WaitForExe), at most 120 s.
!macro DeleteExe
  StrCpy $R9 0
  ${Do}
    Delete "$INSTDIR\parlour.exe"
    ${IfNot} ${FileExists} "$INSTDIR\parlour.exe"
      ${Break}
    ${EndIf}
    IntOp $R9 $R9 + 1
    ${If} $R9 >= 120
      ${Break}
    ${EndIf}
    Sleep 1000
  ${Loop}
!macroend

Section "Parlour server" SecMain
  SetShellVarContext all                           ; pitfall 7: $APPDATA is now C:\ProgramData
  !insertmacro StopService                         ; upgrade: stop before replacing the exe
  !insertmacro WaitForExe
  SetOutPath "$INSTDIR"
  File "parlour.exe"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateDirectory "$APPDATA\Parlour"

  WriteRegStr HKLM "${UNINST_KEY}" "DisplayName" "Parlour XMPP server"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINST_KEY}" "Publisher" "Parlour"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayIcon" "$INSTDIR\parlour.exe"
  WriteRegStr HKLM "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINST_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoRepair" 1

  ; The service: `parlour.exe service run` talks to the service manager (appliance/cli/service.py).
  ; Not LocalSystem: the virtual account NT SERVICE\Parlour (no password; the service manager grants it
  ; "log on as a service"). It may only modify its data folder; elsewhere it has a normal user's rights.
  ; The account is given at creation; on upgrade `create` fails (the service exists) and `config` sets
  ; the new path and the account (an installation from before had LocalSystem).
  nsExec::ExecToLog 'sc.exe create ${SERVICE} binPath= "\"$INSTDIR\parlour.exe\" service run" start= auto DisplayName= "Parlour XMPP server" obj= "NT SERVICE\${SERVICE}"'
  nsExec::ExecToLog 'sc.exe config ${SERVICE} binPath= "\"$INSTDIR\parlour.exe\" service run" start= auto obj= "NT SERVICE\${SERVICE}"'
  nsExec::ExecToLog 'sc.exe description ${SERVICE} "Parlour XMPP server appliance"'
  nsExec::ExecToLog 'sc.exe sidtype ${SERVICE} unrestricted'
  ; Config and data: only Administrators, SYSTEM and the service may read them (keys, the database and
  ; the one-time setup token live here). The service's SID exists once the service does.
  nsExec::ExecToLog 'icacls "$APPDATA\Parlour" /inheritance:r /grant:r *S-1-5-32-544:(OI)(CI)F *S-1-5-18:(OI)(CI)F "NT SERVICE\${SERVICE}:(OI)(CI)M"'
  nsExec::ExecToLog 'sc.exe failure ${SERVICE} reset= 86400 actions= restart/5000/restart/5000/restart/60000'
  nsExec::ExecToLog 'netsh advfirewall firewall delete rule name="${FIREWALL_RULE}"'
  ; Domain and private networks only: a laptop on a public network (café, hotel) stays closed.
  nsExec::ExecToLog 'netsh advfirewall firewall add rule name="${FIREWALL_RULE}" dir=in action=allow protocol=TCP localport=${PORTS} profile=domain,private program="$INSTDIR\parlour.exe"'
  nsExec::ExecToLog 'sc.exe start ${SERVICE}'

  ; Start menu: the wizard (`parlour.exe service wizard` reads the one-time token, so it runs elevated).
  CreateDirectory "$SMPROGRAMS\Parlour"
  CreateShortcut "$SMPROGRAMS\Parlour\Parlour setup.lnk" "$INSTDIR\parlour.exe" "service wizard" \
    "$INSTDIR\parlour.exe" 0 SW_SHOWMINIMIZED "" "Open the Parlour setup wizard in the browser"
  Push "$SMPROGRAMS\Parlour\Parlour setup.lnk"
  Call SetShortcutRunAsAdmin
  CreateShortcut "$SMPROGRAMS\Parlour\Uninstall Parlour.lnk" "$INSTDIR\uninstall.exe"
  ${IfNot} ${Silent}
    ExecShell "open" "$SMPROGRAMS\Parlour\Parlour setup.lnk"
  ${EndIf}
SectionEnd

; SetShortcutRunAsAdmin: set SLDF_RUNAS_USER (0x2000) in the .lnk header's LinkFlags (byte 0x15, bit 0x20),
; the "Run as administrator" box of the shortcut's properties.
Function SetShortcutRunAsAdmin
  Exch $0
  Push $1
  FileOpen $1 $0 a
  FileSeek $1 0x15 SET
  FileReadByte $1 $0
  IntOp $0 $0 | 0x20
  FileSeek $1 0x15 SET
  FileWriteByte $1 $0
  FileClose $1
  Pop $1
  Pop $0
FunctionEnd

Section "Uninstall"
  SetRegView 64
  SetShellVarContext all
  !insertmacro StopService
  nsExec::ExecToLog 'sc.exe delete ${SERVICE}'
  nsExec::ExecToLog 'netsh advfirewall firewall delete rule name="${FIREWALL_RULE}"'
  Delete "$SMPROGRAMS\Parlour\Parlour setup.lnk"
  Delete "$SMPROGRAMS\Parlour\Uninstall Parlour.lnk"
  RMDir "$SMPROGRAMS\Parlour"
  !insertmacro DeleteExe
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKLM "${UNINST_KEY}"

  ; Data (config, database, certificates, log) stays unless asked: /PURGE, or Yes to the question.
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/PURGE" $R1
  ${IfNot} ${Errors}
    RMDir /r "$APPDATA\Parlour"
  ${ElseIf} ${FileExists} "$APPDATA\Parlour\*.*"
    MessageBox MB_YESNO|MB_ICONQUESTION|MB_DEFBUTTON2 \
      "Also delete Parlour's data (configuration, accounts, messages, certificates) in $APPDATA\Parlour?" \
      /SD IDNO IDNO keep
    RMDir /r "$APPDATA\Parlour"
    keep:
  ${EndIf}
SectionEnd
