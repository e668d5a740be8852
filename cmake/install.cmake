# `cmake --install` for the service side: systemd units, the sysusers.d entry creating group
# `avr`, and the configuration files under /etc/avr-webhookd/. include()d by the top-level
# CMakeLists.txt after the avr-webhookd target.
#
# Directories (cache variables, empty = the default):
#   AVR_WEBHOOKD_SYSTEMD_UNIT_DIR  pkg-config systemd's systemdsystemunitdir, else lib/systemd/system
#   AVR_WEBHOOKD_SYSUSERS_DIR      pkg-config systemd's sysusersdir, else lib/sysusers.d
#   AVR_WEBHOOKD_CONFIG_DIR        /etc/avr-webhookd: the daemon and the unit read it there
# The unit's ExecStart= is ${CMAKE_INSTALL_FULL_BINDIR}/avr-webhookd as configured, so choose
# the prefix when configuring (-DCMAKE_INSTALL_PREFIX=/usr), not with `cmake --install --prefix`.

include(GNUInstallDirs)

set(AVR_WEBHOOKD_SYSTEMD_UNIT_DIR "" CACHE PATH "Where to install the systemd units")
set(AVR_WEBHOOKD_SYSUSERS_DIR "" CACHE PATH "Where to install the sysusers.d entry")
set(AVR_WEBHOOKD_CONFIG_DIR "/etc/avr-webhookd" CACHE PATH "Where to install the configuration files")

find_package(PkgConfig QUIET)
function(avr_webhookd_systemd_dir result pkg_config_variable fallback)
  set(dir "${${result}}")
  if(NOT dir AND PKG_CONFIG_FOUND)
    pkg_get_variable(dir systemd ${pkg_config_variable})
  endif()
  if(NOT dir)
    set(dir "${fallback}")
  endif()
  set(${result} "${dir}" PARENT_SCOPE)
endfunction()
avr_webhookd_systemd_dir(AVR_WEBHOOKD_SYSTEMD_UNIT_DIR systemdsystemunitdir lib/systemd/system)
avr_webhookd_systemd_dir(AVR_WEBHOOKD_SYSUSERS_DIR sysusersdir lib/sysusers.d)

configure_file(${PROJECT_SOURCE_DIR}/systemd/avr-webhookd.service.in
               ${PROJECT_BINARY_DIR}/systemd/avr-webhookd.service @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/systemd/avr-webhookd.service
              ${PROJECT_SOURCE_DIR}/systemd/avr-webhookd.socket
        DESTINATION ${AVR_WEBHOOKD_SYSTEMD_UNIT_DIR}
        COMPONENT systemd)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/avr-webhookd.sysusers.conf
        DESTINATION ${AVR_WEBHOOKD_SYSUSERS_DIR}
        RENAME avr-webhookd.conf
        COMPONENT systemd)

# An administrator's edited configuration is never overwritten by a reinstall. The .conf file
# is world-readable because the service runs as a transient user; the .env file may hold the
# secret and is read by systemd as root, so only root reads it.
function(avr_webhookd_install_config_file file permissions)
  install(CODE "
    set(target \"\$ENV{DESTDIR}${AVR_WEBHOOKD_CONFIG_DIR}/${file}\")
    if(EXISTS \"\${target}\")
      message(STATUS \"Keeping existing: \${target}\")
    else()
      file(INSTALL \"${PROJECT_SOURCE_DIR}/config/${file}\"
           DESTINATION \"${AVR_WEBHOOKD_CONFIG_DIR}\"
           FILE_PERMISSIONS ${permissions})
    endif()"
    COMPONENT config)
endfunction()
avr_webhookd_install_config_file(avr-webhookd.conf "OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ")
avr_webhookd_install_config_file(avr-webhookd.env "OWNER_READ OWNER_WRITE")
